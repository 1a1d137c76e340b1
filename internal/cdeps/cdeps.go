// Package cdeps checks, when it is compiled, that the C++ compiler finds
// the headers llama.cpp's sources need besides the pinned module's: the
// nlohmann/json library, which llama.cpp's JSON Schema converter (the
// common package of github.com/ollama/ollama, which package llama imports)
// includes and the Go module leaves out with llama.cpp's vendor
// directory. Without it the build fails in that package with the
// compiler's "nlohmann/json.hpp: No such file or directory"; package
// llama imports this one, which has no dependencies, so that the go
// command builds it alongside and prints, next to that error, what to
// install.
package cdeps

// #cgo CXXFLAGS: -std=c++17
import "C"
