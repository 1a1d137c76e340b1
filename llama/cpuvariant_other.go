//go:build !(linux && amd64) || llama_system

package llama

// loadCPUVariant does nothing here: CPU backend libraries are built and
// loaded on Linux x86-64 only (see CPUVariant and docs/portable.md), and
// with an installed llama.cpp (build tag llama_system) its ggml chooses.
func loadCPUVariant() { _ = cpuVariantDirs }
