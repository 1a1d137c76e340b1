package llama

/*
#include <stdlib.h>
#include "llama.h"
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"iter"
	"os"
	"runtime/cgo"
	"strings"
	"sync"
	"unsafe"
)

// Model is a loaded GGUF model: weights, hyperparameters and vocabulary.
//
// A Model is safe for concurrent use by many goroutines: tokenization and
// metadata queries may run while contexts of the model generate. Close
// closes every Context and Sampler made from the model first.
type Model struct {
	mu     sync.RWMutex // read-held by C calls, write-held by Close
	c      *C.struct_llama_model
	vocab  *C.struct_llama_vocab
	closed bool

	path      string
	vocabOnly bool
	onCPU     bool // no layer on a GPU: attention runs on the CPU
	info      modelInfo

	childMu  sync.Mutex
	children map[child]struct{}

	piecesOnce sync.Once
	pieces     []string  // rendered text of every token, for Generate
	eogs       []TokenID // the end-of-generation tokens
	eog        []bool    // by token: end of generation
}

// child is an object made from a Model that must be freed before it.
type child interface{ closeFromModel() }

type modelInfo struct {
	desc      string
	arch      string
	nParams   uint64
	size      uint64
	nCtxTrain int
	nEmbd     int
	nLayer    int
	nHead     int
	nHeadKV   int
	nVocab    int32
	vocabType VocabType
	template  string
	// specialProblem says why tokenizing with AddSpecial would make
	// llama.cpp abort ("" if it would not).
	specialProblem string
	// memory is the layout of the model's sequence states.
	memory memoryKind
	// tensors are the shapes of the tensors in the model's (first) file,
	// which LoRA adapters must fit.
	tensors map[string][4]uint64
	// fit is the fit planner's view of the model, which NewContext
	// estimates a context's memory with; nil if the planner cannot read
	// the file.
	fit *fitModel
}

// SplitMode says how a model is split across several GPUs.
type SplitMode int

// Split modes, as llama.cpp's --split-mode.
const (
	SplitNone  SplitMode = 0 // one GPU (MainGPU)
	SplitLayer SplitMode = 1 // layers and KV cache across GPUs (the default)
	SplitRow   SplitMode = 2 // rows across GPUs, where the backend supports it
)

type modelConfig struct {
	optErr
	params    C.struct_llama_model_params
	split     []float32
	overrides []kvOverride
	progress  func(float32) bool
}

type kvOverride struct {
	key   string
	value any
}

// ModelOption configures Load, which refuses an invalid one.
type ModelOption func(*modelConfig)

// WithGPULayers sets how many layers to offload to GPUs; -1 means all.
// It has no effect without a GPU backend.
func WithGPULayers(n int) ModelOption {
	return func(c *modelConfig) {
		if n < 0 {
			n = 1 << 30
		}
		c.params.n_gpu_layers = C.int32_t(min(n, 1<<30))
	}
}

// WithMainGPU selects the GPU used for the whole model with SplitNone, and
// for intermediate results with SplitRow.
func WithMainGPU(i int) ModelOption {
	return func(c *modelConfig) {
		if i < 0 {
			c.fail(invalidArg("main GPU %d", i))
			return
		}
		c.params.main_gpu = C.int32_t(i)
	}
}

// WithSplitMode sets how the model is split across GPUs.
func WithSplitMode(m SplitMode) ModelOption {
	return func(c *modelConfig) {
		if m < SplitNone || m > SplitRow {
			c.fail(invalidArg("split mode %d", m))
			return
		}
		c.params.split_mode = C.enum_llama_split_mode(m)
	}
}

// WithTensorSplit sets the proportion of the model to put on each GPU.
func WithTensorSplit(p []float32) ModelOption {
	return func(c *modelConfig) {
		if len(p) > int(C.llama_max_devices()) {
			c.fail(invalidArg("tensor split has %d entries, at most %d devices", len(p), C.llama_max_devices()))
			return
		}
		for _, f := range p {
			if f < 0 || f != f {
				c.fail(invalidArg("tensor split proportion %v", f))
				return
			}
		}
		c.split = append([]float32(nil), p...)
	}
}

// WithMmap sets whether the model file is memory-mapped (default true where
// supported).
func WithMmap(on bool) ModelOption {
	return func(c *modelConfig) { c.params.use_mmap = C.bool(on) }
}

// WithMlock sets whether the model's memory is locked in RAM.
func WithMlock(on bool) ModelOption {
	return func(c *modelConfig) { c.params.use_mlock = C.bool(on) }
}

// WithVocabOnly loads only the vocabulary and metadata, not the weights: the
// model can tokenize but not make contexts.
func WithVocabOnly() ModelOption {
	return func(c *modelConfig) { c.params.vocab_only = true }
}

// WithCheckTensors validates the tensor data while loading (slow).
func WithCheckTensors() ModelOption {
	return func(c *modelConfig) { c.params.check_tensors = true }
}

// WithRepack sets whether weights may be repacked into CPU-friendlier
// layouts at load (default true).
func WithRepack(on bool) ModelOption {
	return func(c *modelConfig) { c.params.use_extra_bufts = C.bool(on) }
}

// WithMetadataOverride overrides a metadata key of the file. value must be
// an int, int64, float64, bool or string (at most 127 bytes, as the key).
func WithMetadataOverride(key string, value any) ModelOption {
	return func(c *modelConfig) {
		if key == "" || len(key) > 127 || strings.IndexByte(key, 0) >= 0 {
			c.fail(invalidArg("metadata override key %q", key))
			return
		}
		switch v := value.(type) {
		case int, int64, float64, bool:
		case string:
			if len(v) > 127 || strings.IndexByte(v, 0) >= 0 {
				c.fail(invalidArg("metadata override %s: string value too long", key))
				return
			}
		default:
			c.fail(invalidArg("metadata override %s: unsupported type %T", key, value))
			return
		}
		c.overrides = append(c.overrides, kvOverride{key, value})
	}
}

// WithProgress calls f during the load with the fraction done, from 0 to 1.
// If f returns false the load stops and Load returns context.Canceled; if
// f panics, the load stops and Load returns the panic as a
// *CallbackPanic. f runs on the loading goroutine.
func WithProgress(f func(progress float32) bool) ModelOption {
	return func(c *modelConfig) { c.progress = f }
}

// Load loads a GGUF model file. The file is first checked in Go (magic,
// version, lengths, tensor table, hyperparameters), so a truncated or
// hostile file returns an error rather than reaching llama.cpp.
// Cancelling ctx stops the load between tensors.
func Load(ctx context.Context, path string, opts ...ModelOption) (*Model, error) {
	initBackend()
	cfg := modelConfig{params: C.llama_model_default_params()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	file, err := readModelFile(path, bool(cfg.params.vocab_only), cfg.overrides...)
	if err != nil {
		return nil, err
	}

	var pinned []unsafe.Pointer
	defer func() {
		for _, p := range pinned {
			C.free(p)
		}
	}()
	if len(cfg.split) > 0 {
		n := int(C.llama_max_devices())
		p := C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.float(0))))
		pinned = append(pinned, p)
		s := unsafe.Slice((*C.float)(p), n)
		for i, f := range cfg.split {
			s[i] = C.float(f)
		}
		cfg.params.tensor_split = (*C.float)(p)
	}
	if len(cfg.overrides) > 0 {
		n := len(cfg.overrides) + 1 // zeroed terminator
		p := C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.struct_llama_model_kv_override{})))
		pinned = append(pinned, p)
		s := unsafe.Slice((*C.struct_llama_model_kv_override)(p), n)
		for i, o := range cfg.overrides {
			key := C.CString(o.key)
			var kind C.int
			var iv C.int64_t
			var fv C.double
			var bv C.bool
			var sv *C.char
			switch v := o.value.(type) {
			case int:
				iv = C.int64_t(v)
			case int64:
				iv = C.int64_t(v)
			case float64:
				kind, fv = 1, C.double(v)
			case bool:
				kind, bv = 2, C.bool(v)
			case string:
				kind, sv = 3, C.CString(v)
			}
			C.llamago_kv_override_set(&s[i], key, kind, iv, fv, bv, sv)
			C.free(unsafe.Pointer(key))
			if sv != nil {
				C.free(unsafe.Pointer(sv))
			}
		}
		cfg.params.kv_overrides = (*C.struct_llama_model_kv_override)(p)
	}

	cancelled := false
	var panicked *CallbackPanic
	progress := func(f float32) (ok bool) {
		// A panic must not unwind through llama.cpp's frames: it stops
		// the load, and Load returns it.
		defer func() {
			if r := recover(); r != nil {
				panicked, ok = &CallbackPanic{Callback: "progress", Value: r}, false
			}
		}()
		if ctx.Err() != nil || (cfg.progress != nil && !cfg.progress(f)) {
			cancelled = true
			return false
		}
		return true
	}
	h := cgo.NewHandle(progress)
	defer h.Delete()
	cfg.params.progress_callback = C.llama_progress_callback(C.llamago_progress)
	cfg.params.progress_callback_user_data = C.llamago_handle(C.uintptr_t(h))

	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	capture := startCapture()
	cm := C.llama_model_load_from_file(cpath, cfg.params)
	capture.stop()
	if err := capture.err(); err != nil && cm != nil {
		C.llama_model_free(cm)
		return nil, err
	}
	if cm == nil {
		switch {
		case panicked != nil:
			return nil, panicked
		case cancelled:
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, context.Canceled
		}
		if err := capture.err(); err != nil {
			return nil, err
		}
		reason := capture.reason()
		if reason == "" {
			reason = "llama.cpp could not load the model"
		}
		return nil, &LoadError{Path: path, Reason: reason}
	}
	m := &Model{c: cm, vocab: C.llama_model_get_vocab(cm), path: path, vocabOnly: bool(cfg.params.vocab_only),
		onCPU: cfg.params.n_gpu_layers == 0 || !bool(C.llama_supports_gpu_offload())}
	m.readInfo()
	m.info.tensors = make(map[string][4]uint64, len(file.Tensors))
	for _, t := range file.Tensors {
		m.info.tensors[t.Name] = dims4(t.Dims)
	}
	if f, err := fitModelOf(file); err == nil && !m.vocabOnly {
		m.info.fit = &f
	}
	return m, nil
}

func (m *Model) readInfo() {
	i := &m.info
	var buf [512]C.char
	if n := C.llama_model_desc(m.c, &buf[0], C.size_t(len(buf))); n > 0 {
		i.desc = C.GoString(&buf[0])
	}
	i.arch, _ = m.metadata("general.architecture")
	i.nParams = uint64(C.llama_model_n_params(m.c))
	i.size = uint64(C.llama_model_size(m.c))
	i.nCtxTrain = int(C.llama_model_n_ctx_train(m.c))
	i.nEmbd = int(C.llama_model_n_embd(m.c))
	i.nLayer = int(C.llama_model_n_layer(m.c))
	if i.nLayer > 0 {
		// llama.cpp aborts on these with no layers, as in a vocab-only
		// model, whose hyperparameters it does not load.
		i.nHead = int(C.llama_model_n_head(m.c))
		i.nHeadKV = int(C.llama_model_n_head_kv(m.c))
		switch {
		case bool(C.llama_model_is_hybrid(m.c)):
			i.memory = memoryHybrid
		case bool(C.llama_model_is_recurrent(m.c)):
			i.memory = memoryRecurrent
		case C.llama_model_n_swa(m.c) > 0:
			i.memory = memorySWA
		}
	}
	i.nVocab = int32(C.llama_vocab_n_tokens(m.vocab))
	i.vocabType = VocabType(C.llama_vocab_type(m.vocab))
	i.specialProblem = specialProblem(m.vocab, i.vocabType)
	if t := C.llama_model_chat_template(m.c, nil); t != nil {
		i.template = C.GoString(t)
	}
}

// Close frees the model after closing every Context and Sampler made from
// it. It is safe to call more than once.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.childMu.Lock()
	children := make([]child, 0, len(m.children))
	for c := range m.children {
		children = append(children, c)
	}
	m.childMu.Unlock()
	// Adapters last, once no context applies them.
	var adapters []child
	for _, c := range children {
		if _, ok := c.(*Adapter); ok {
			adapters = append(adapters, c)
			continue
		}
		c.closeFromModel()
	}
	for _, a := range adapters {
		a.closeFromModel()
	}
	C.llama_model_free(m.c)
	m.c, m.vocab, m.closed = nil, nil, true
	return nil
}

func (m *Model) addChild(c child) {
	m.childMu.Lock()
	if m.children == nil {
		m.children = map[child]struct{}{}
	}
	m.children[c] = struct{}{}
	m.childMu.Unlock()
}

func (m *Model) removeChild(c child) {
	m.childMu.Lock()
	delete(m.children, c)
	m.childMu.Unlock()
}

// rlock read-locks a live model; the caller must call m.mu.RUnlock.
func (m *Model) rlock() error {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Path is the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// Description is llama.cpp's one-line description, e.g. "llama ?B all F32".
func (m *Model) Description() string { return m.info.desc }

// Architecture is the general.architecture metadata value, e.g. "llama".
func (m *Model) Architecture() string { return m.info.arch }

// ParameterCount is the number of parameters in the weights.
func (m *Model) ParameterCount() uint64 { return m.info.nParams }

// Size is the total size of the weights in bytes.
func (m *Model) Size() uint64 { return m.info.size }

// TrainedContext is the context length the model was trained with.
func (m *Model) TrainedContext() int { return m.info.nCtxTrain }

// EmbeddingSize is n_embd, the width of the model's hidden state.
func (m *Model) EmbeddingSize() int { return m.info.nEmbd }

// Layers is the number of transformer blocks.
func (m *Model) Layers() int { return m.info.nLayer }

// Heads is the number of attention heads.
func (m *Model) Heads() int { return m.info.nHead }

// KVHeads is the number of key/value heads (grouped-query attention).
func (m *Model) KVHeads() int { return m.info.nHeadKV }

// VocabOnly reports whether the model was loaded without weights.
func (m *Model) VocabOnly() bool { return m.vocabOnly }

// ChatTemplate returns the model's default chat template (Jinja source, from
// tokenizer.chat_template), or "" if the file has none.
func (m *Model) ChatTemplate() string { return m.info.template }

// HasEncoder reports whether the model has an encoder (T5-like).
func (m *Model) HasEncoder() (bool, error) {
	if err := m.rlock(); err != nil {
		return false, err
	}
	defer m.mu.RUnlock()
	return bool(C.llama_model_has_encoder(m.c)), nil
}

// Metadata returns the value of a metadata key as text, as llama.cpp
// renders it. Array values are not available this way.
func (m *Model) Metadata(key string) (string, bool) {
	if m.rlock() != nil {
		return "", false
	}
	defer m.mu.RUnlock()
	return m.metadata(key)
}

func (m *Model) metadata(key string) (string, bool) {
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	return cString(func(buf *C.char, n C.size_t) C.int32_t {
		return C.llama_model_meta_val_str(m.c, ckey, buf, n)
	})
}

// AllMetadata iterates over the model's metadata keys and values, in file
// order. Array values are skipped by llama.cpp.
func (m *Model) AllMetadata() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for i := 0; ; i++ {
			k, v, ok := m.metadataAt(i)
			if !ok || !yield(k, v) {
				return
			}
		}
	}
}

func (m *Model) metadataAt(i int) (key, value string, ok bool) {
	if m.rlock() != nil {
		return "", "", false
	}
	defer m.mu.RUnlock()
	if i >= int(C.llama_model_meta_count(m.c)) {
		return "", "", false
	}
	key, _ = cString(func(buf *C.char, n C.size_t) C.int32_t {
		return C.llama_model_meta_key_by_index(m.c, C.int32_t(i), buf, n)
	})
	value, _ = cString(func(buf *C.char, n C.size_t) C.int32_t {
		return C.llama_model_meta_val_str_by_index(m.c, C.int32_t(i), buf, n)
	})
	return key, value, true
}

// cString calls f, which writes a NUL-terminated string of length n (its
// return value, or negative if absent) into a buffer, growing the buffer
// until the string fits.
func cString(f func(buf *C.char, n C.size_t) C.int32_t) (string, bool) {
	size := 256
	for {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		n := int(f(buf, C.size_t(size)))
		if n < 0 {
			C.free(unsafe.Pointer(buf))
			return "", false
		}
		if n < size {
			s := C.GoStringN(buf, C.int(n))
			C.free(unsafe.Pointer(buf))
			return s, true
		}
		C.free(unsafe.Pointer(buf))
		size = n + 1
	}
}

func (m *Model) String() string {
	return fmt.Sprintf("llama.Model(%s, %s)", m.path, m.info.desc)
}

// fileExists distinguishes "no such file" from llama.cpp's generic failure.
func fileExists(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("llama: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("llama: %s is a directory, not a model file", path)
	}
	return nil
}
