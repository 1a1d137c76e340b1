// Package models finds, downloads and describes GGUF model files.
//
// A [Store] maps model references to local files and downloads them into a
// local directory. A reference is one of:
//
//   - a path to a file: absolute, starting with ./ or ../, or any existing
//     file;
//   - a name looked up in the store's search directories, with or without
//     the .gguf extension, such as "tinyllama" or, in the store's layout,
//     "Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf";
//   - an alias of the built-in [Catalog], such as "stories260k";
//   - a Hugging Face file, "hf://OWNER/REPO/FILE.gguf", where FILE may lie in
//     a folder of the repository;
//   - a Hugging Face repository and quantization, "OWNER/REPO:QUANT" or
//     "hf://OWNER/REPO:QUANT". The quantization defaults to [DefaultQuant],
//     as with llama.cpp's -hf option.
//
// [Store.Resolve] finds a reference among local files only; [Store.Pull]
// downloads it when it is not there. Downloads resume after an interruption,
// are verified against the size and SHA-256 when those are known, are
// checked to be GGUF files, and appear in the store only once complete.
// Hugging Face files are stored as OWNER/REPO/FILE under the first search
// directory.
//
// The package is pure Go: it does not load models, and it does not depend on
// llama.cpp. It also builds synthetic models ([Synthesize]) and summarises
// model metadata ([Inspect]).
package models
