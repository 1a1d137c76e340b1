package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/llamago/llamago/gguf"
)

// Adapter is a LoRA adapter loaded for one Model (a GGUF file with
// general.type "adapter", as llama.cpp's convert_lora_to_gguf.py writes
// it). Contexts of the model apply it from their creation, with
// WithAdapter and a scale of their own; the model's weights are not
// changed, and other contexts are not affected.
//
// Adapters are fixed for a context's life: llama.cpp reuses a decode's
// graph for the next when the batch has the same shape, without noticing
// that the adapters changed, so changing them on a live context would go on
// applying the old ones, or freed ones.
//
// Close frees it once no open context applies it; closing the model closes
// its adapters too.
type Adapter struct {
	m    *Model
	path string

	mu     sync.Mutex
	c      *C.struct_llama_adapter_lora
	refs   int // open contexts that apply it
	closed bool
}

// LoadAdapter loads a LoRA adapter for m from path. The file is checked
// as a model file is before llama.cpp reads it; an adapter made for
// another model (architecture or tensor shapes) gives ErrInvalidModel.
func (m *Model) LoadAdapter(path string) (*Adapter, error) {
	if err := validateAdapterFile(path, m.info.tensors); err != nil {
		return nil, err
	}
	if err := m.rlock(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	if m.vocabOnly {
		return nil, invalidArg("model %s was loaded vocab-only", m.path)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	capture := startCapture()
	ac := C.llama_adapter_lora_init(m.c, cpath)
	capture.stop()
	if err := capture.err(); err != nil {
		if ac != nil {
			C.llama_adapter_lora_free(ac)
		}
		return nil, err
	}
	if ac == nil {
		reason := capture.reason()
		if reason == "" {
			reason = "llama.cpp gave no reason"
		}
		return nil, fmt.Errorf("%w: %s: llama.cpp could not load it as a LoRA adapter of %s: %s", ErrInvalidModel, path, m.path, reason)
	}
	a := &Adapter{m: m, path: path, c: ac}
	m.addChild(a)
	return a, nil
}

// validateAdapterFile checks an adapter's GGUF structure, kind, tensor
// types and its tensors' shapes against the model's, as validateModelFile
// does a model's.
func validateAdapterFile(path string, model map[string][4]uint64) error {
	f, err := openGGUF(path)
	if err != nil {
		return err
	}
	if t, _ := f.String("general.type"); t != "adapter" {
		return fmt.Errorf("%w: %s is not an adapter (general.type %q)", ErrInvalidModel, path, t)
	}
	if t, _ := f.String("adapter.type"); t != "lora" {
		return fmt.Errorf("%w: %s is not a LoRA adapter (adapter.type %q)", ErrInvalidModel, path, t)
	}
	// llama.cpp reads these with getters that abort on another type.
	if v, ok := f.Lookup("general.architecture"); ok && v.Type != gguf.TypeString {
		return fmt.Errorf("%w: %s: general.architecture is %s, not a string", ErrInvalidModel, path, v.Type)
	}
	if v, ok := f.Lookup("adapter.lora.alpha"); ok && v.Type != gguf.TypeFloat32 {
		return fmt.Errorf("%w: %s: adapter.lora.alpha is %s, not a float32", ErrInvalidModel, path, v.Type)
	}
	pairs := map[string]*[2]gguf.TensorInfo{}
	for _, t := range f.Tensors {
		base, half, ok := strings.Cut(t.Name, ".lora_")
		if !ok || (half != "a" && half != "b") {
			return fmt.Errorf("%w: %s: tensor %q is not a LoRA matrix", ErrInvalidModel, path, t.Name)
		}
		if err := checkWeightType(t); err != nil {
			return fmt.Errorf("%w: %s: %s", ErrInvalidModel, path, err)
		}
		if pairs[base] == nil {
			pairs[base] = new([2]gguf.TensorInfo)
		}
		pairs[base][half[0]-'a'] = t
	}
	for name, p := range pairs {
		w, ok := model[name]
		if !ok || p[0].Name == "" || p[1].Name == "" {
			continue // llama.cpp refuses these itself
		}
		if !loraShapesFit(name, w, dims4(p[0].Dims), dims4(p[1].Dims)) {
			return fmt.Errorf("%w: %s: LoRA matrices %v and %v do not fit the model's %q, %v", ErrInvalidModel, path, p[0].Dims, p[1].Dims, name, w)
		}
	}
	return nil
}

// loraShapesFit reports whether a and b are the LoRA matrices of a model
// tensor w of that name as llama.cpp's graph multiplies them: llama.cpp
// checks their first two dimensions only, and ggml aborts on the rest.
func loraShapesFit(name string, w, a, b [4]uint64) bool {
	if strings.HasSuffix(name, "token_embd.weight") {
		// Rows of A are looked up by token, then multiplied by B.
		return a[0] == b[0] && a[1] == w[1] && b[1] == w[0] && a[2] == 1 && a[3] == 1 && b[2] == 1 && b[3] == 1
	}
	// A then B, per expert for three-dimensional (expert) weights.
	return a[0] == w[0] && b[1] == w[1] && a[1] == b[0] && a[2] == w[2] && b[2] == w[2] && a[3] == w[3] && b[3] == w[3]
}

// dims4 is a tensor's dimensions as ggml's ne: four, 1 past its own.
func dims4(d []uint64) [4]uint64 {
	ne := [4]uint64{1, 1, 1, 1}
	copy(ne[:], d)
	return ne
}

// Path is the file the adapter was loaded from.
func (a *Adapter) Path() string { return a.path }

// Close frees the adapter, at once or when the last open context that
// applies it is closed; contexts made afterwards cannot apply it. It is
// safe to call more than once.
func (a *Adapter) Close() error {
	if a.close() {
		a.m.removeChild(a)
	}
	return nil
}

func (a *Adapter) closeFromModel() { a.close() }

func (a *Adapter) close() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.closed = true
	a.freeUnused()
	return true
}

// acquire counts one more context applying a, unless a is closed.
func (a *Adapter) acquire() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("%w: adapter %s", ErrClosed, a.path)
	}
	a.refs++
	return nil
}

// release counts one context fewer, and frees a closed adapter no context
// applies any more.
func (a *Adapter) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refs--
	a.freeUnused()
}

// freeUnused frees a closed adapter no context applies; the caller holds
// a.mu.
func (a *Adapter) freeUnused() {
	if a.closed && a.refs == 0 && a.c != nil {
		C.llama_adapter_lora_free(a.c)
		a.c = nil
	}
}

// WithAdapter makes the context apply a LoRA adapter of the model with a
// scale (1: as trained, 0: no effect). Several adapters may be given.
func WithAdapter(a *Adapter, scale float32) ContextOption {
	return func(c *contextConfig) {
		if err := checkAdapterScale(scale); err != nil {
			c.fail(err)
			return
		}
		if a == nil {
			c.fail(invalidArg("nil adapter"))
			return
		}
		c.adapters = append(c.adapters, adapterScale{a, scale})
	}
}

type adapterScale struct {
	a     *Adapter
	scale float32
}

func checkAdapterScale(scale float32) error {
	if math.IsNaN(float64(scale)) || math.IsInf(float64(scale), 0) {
		return invalidArg("adapter scale %v", scale)
	}
	return nil
}

// Adapters returns the adapters the context applies and their scales.
func (c *Context) Adapters() map[*Adapter]float32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[*Adapter]float32, len(c.adapters))
	for _, as := range c.adapters {
		out[as.a] = as.scale
	}
	return out
}

// applyAdapters applies the adapters of NewContext's options to the new
// context c, before its first decode.
func (c *Context) applyAdapters(adapters []adapterScale) error {
	for i, as := range adapters {
		if as.a.m != c.m {
			return invalidArg("adapter %s was loaded for model %s, not %s", as.a.path, as.a.m.path, c.m.path)
		}
		if slices.ContainsFunc(adapters[:i], func(o adapterScale) bool { return o.a == as.a }) {
			return invalidArg("adapter %s given twice", as.a.path)
		}
		if err := as.a.acquire(); err != nil {
			return err
		}
		c.adapters = append(c.adapters, as)
		C.llama_set_adapter_lora(c.c, as.a.c, C.float(as.scale))
	}
	return nil
}

// releaseAdapters lets the context's adapters go; the caller holds c.mu
// and has freed the llama.cpp context.
func (c *Context) releaseAdapters() {
	for _, as := range c.adapters {
		as.a.release()
	}
	c.adapters = nil
}
