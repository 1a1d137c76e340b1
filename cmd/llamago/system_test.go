//go:build llama_system

package main

// llamaSystem: the test binary links an installed llama.cpp (-tags
// llama_system), and so must the binaries the tests build.
const llamaSystem = true
