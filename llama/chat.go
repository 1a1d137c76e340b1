package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// ChatMessage is one message of a conversation for ApplyBuiltinTemplate.
type ChatMessage struct {
	Role    string // system, user, assistant, tool
	Content string
}

// BuiltinTemplates lists the names of llama.cpp's built-in chat templates
// (chatml, llama3, phi3, gemma, mistral-v7, ...).
func BuiltinTemplates() []string {
	initBackend()
	n := int(C.llama_chat_builtin_templates(nil, 0))
	if n <= 0 {
		return nil
	}
	names := make([]*C.char, n)
	n = int(C.llama_chat_builtin_templates(&names[0], C.size_t(n)))
	out := make([]string, 0, n)
	for _, p := range names[:n] {
		out = append(out, C.GoString(p))
	}
	return out
}

// ApplyBuiltinTemplate renders a conversation with one of llama.cpp's
// built-in templates, named as BuiltinTemplates lists them, or detected
// from a Jinja template's source by llama.cpp's heuristics. With
// addAssistant the result ends with the prefix of an assistant reply.
func ApplyBuiltinTemplate(name string, msgs []ChatMessage, addAssistant bool) (string, error) {
	initBackend()
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return "", invalidArg("template name %q", name)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	cmsgs := make([]C.llama_chat_message, len(msgs))
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	size := 0
	for i, m := range msgs {
		if strings.IndexByte(m.Role, 0) >= 0 || strings.IndexByte(m.Content, 0) >= 0 {
			return "", invalidArg("NUL byte in message %d", i)
		}
		r, c := C.CString(m.Role), C.CString(m.Content)
		frees = append(frees, unsafe.Pointer(r), unsafe.Pointer(c))
		cmsgs[i] = C.llama_chat_message{role: r, content: c}
		size += len(m.Role) + len(m.Content)
	}
	if size > 1<<29 {
		return "", invalidArg("conversation too long")
	}
	// The C array of messages must not hold Go pointers: copy it to C.
	var cm *C.llama_chat_message
	if len(cmsgs) > 0 {
		cm = (*C.llama_chat_message)(C.malloc(C.size_t(len(cmsgs)) * C.size_t(unsafe.Sizeof(cmsgs[0]))))
		frees = append(frees, unsafe.Pointer(cm))
		copy(unsafe.Slice(cm, len(cmsgs)), cmsgs)
	}
	buf := make([]byte, 2*size+256)
	for {
		n := int(C.llama_chat_apply_template(cname, cm, C.size_t(len(cmsgs)), C.bool(addAssistant),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf))))
		if n < 0 {
			return "", fmt.Errorf("llama: chat template %q is not supported by llama.cpp", name)
		}
		if n <= len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, n)
	}
}
