//go:build !llama_system

package main

const llamaSystem = false
