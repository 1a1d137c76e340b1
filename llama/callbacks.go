package llama

// Functions called from C. A file with //export may only declare in its
// preamble, so the C side of these lives in shim.cpp.

// #include <stdbool.h>
// #include <stdint.h>
import "C"

import (
	"runtime/cgo"
)

//export goLog
func goLog(level C.int, text *C.char) {
	logText(int(level), C.GoString(text))
}

//export goProgress
func goProgress(progress C.float, handle C.uintptr_t) C.bool {
	f := cgo.Handle(handle).Value().(func(float32) bool)
	return C.bool(f(float32(progress)))
}
