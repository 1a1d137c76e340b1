// Command llamago runs GGUF language models with llama.cpp.
//
//	llamago run -m model.gguf "Once upon a time"
//	llamago tokenize -m model.gguf -p "Hello world" --ids
//	llamago version
//
// Flag names follow llama.cpp's tools (llama-cli, llama-tokenize), including
// their multi-letter short forms such as -ngl and -ctk.
package main

import "os"

func main() {
	os.Exit(mainRun(os.Args[1:], &iostreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
