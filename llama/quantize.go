package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"github.com/llamago/llamago/gguf"
)

// FileType is a model file's quantization: llama.cpp's llama_ftype, named
// as llama-quantize names them (Q4_K_M and so on).
type FileType int

var fileTypes = map[string]FileType{
	"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
	"Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
	"Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "IQ2_XXS": 19, "IQ2_XS": 20, "Q2_K_S": 21,
	"IQ3_XS": 22, "IQ3_XXS": 23, "IQ1_S": 24, "IQ4_NL": 25, "IQ3_S": 26, "IQ3_M": 27,
	"IQ2_S": 28, "IQ2_M": 29, "IQ4_XS": 30, "IQ1_M": 31, "BF16": 32, "TQ1_0": 36, "TQ2_0": 37,
}

// needsImatrix are the types llama.cpp only makes with an importance
// matrix, which Quantize does not take.
var needsImatrix = map[string]bool{"IQ2_XXS": true, "IQ2_XS": true, "IQ2_S": true, "IQ1_S": true, "IQ1_M": true, "Q2_K_S": true}

func (t FileType) String() string {
	for name, v := range fileTypes {
		if v == t {
			return name
		}
	}
	return fmt.Sprintf("FileType(%d)", int(t))
}

// ParseFileType parses a quantization name such as "Q4_K_M" or "q8_0".
func ParseFileType(s string) (FileType, error) {
	if t, ok := fileTypes[strings.ToUpper(s)]; ok {
		return t, nil
	}
	return 0, invalidArg("unknown quantization type %q (known: %s)", s, strings.Join(FileTypeNames(), ", "))
}

// FileTypeNames lists the quantization names Quantize accepts.
func FileTypeNames() []string {
	var names []string
	for n := range fileTypes {
		if !needsImatrix[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

type quantizeConfig struct {
	optErr
	params C.llama_model_quantize_params
}

// QuantizeOption configures Quantize, which refuses an invalid one.
type QuantizeOption func(*quantizeConfig)

// WithQuantizeThreads sets the worker threads (default DefaultThreads()).
func WithQuantizeThreads(n int) QuantizeOption {
	return func(c *quantizeConfig) {
		if n < 1 || n > 1024 {
			c.fail(invalidArg("%d threads", n))
			return
		}
		c.params.nthread = C.int32_t(n)
	}
}

// WithAllowRequantize allows quantizing tensors that are already quantized.
func WithAllowRequantize() QuantizeOption {
	return func(c *quantizeConfig) { c.params.allow_requantize = true }
}

// WithQuantizeOutput sets whether output.weight is quantized (default true).
func WithQuantizeOutput(on bool) QuantizeOption {
	return func(c *quantizeConfig) { c.params.quantize_output_tensor = C.bool(on) }
}

// WithPure quantizes every tensor to the one type, without the k-quant
// mixes' per-tensor choices.
func WithPure() QuantizeOption {
	return func(c *quantizeConfig) { c.params.pure = true }
}

// WithKeepSplit writes as many shards as the input has.
func WithKeepSplit() QuantizeOption {
	return func(c *quantizeConfig) { c.params.keep_split = true }
}

// Quantize writes a quantized copy of the model file in to out, as
// llama-quantize does (with WithKeepSplit, as split parts named after out).
// The input is validated first, its float tensors read for values that
// would not survive quantization (NaN and infinities, and beyond F16's
// range for F16), which llama.cpp would find only after quantizing, with
// messages written straight to stderr; the output is written in a temporary
// directory beside out and renamed into place, so a failed run leaves
// nothing.
// ctx is checked before the work starts; llama.cpp's quantization cannot be
// interrupted once running.
func Quantize(ctx context.Context, in, out string, t FileType, opts ...QuantizeOption) error {
	initBackend()
	name := t.String()
	if _, ok := fileTypes[name]; !ok {
		return invalidArg("quantization type %d", int(t))
	}
	if needsImatrix[name] {
		return invalidArg("%s needs an importance matrix, which Quantize does not support", name)
	}
	cfg := quantizeConfig{params: C.llama_model_quantize_default_params()}
	cfg.params.nthread = C.int32_t(DefaultThreads())
	cfg.params.ftype = C.enum_llama_ftype(t)
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return cfg.err
	}
	file, err := readModelFile(in, false)
	if err != nil {
		return err
	}
	if err := checkFinite(ctx, in, file, t == fileTypes["F16"]); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// llama.cpp writes out (or, with WithKeepSplit, out's split parts) into
	// a fresh directory beside it, from which the results are moved into
	// place, so a failed run leaves nothing behind.
	tmpDir, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-")
	if err != nil {
		return fmt.Errorf("llama: quantize: cannot write the output: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	cin, ctmp := C.CString(in), C.CString(filepath.Join(tmpDir, filepath.Base(out)))
	defer C.free(unsafe.Pointer(cin))
	defer C.free(unsafe.Pointer(ctmp))
	capture := startCapture()
	rc := C.llama_model_quantize(cin, ctmp, &cfg.params)
	capture.stop()
	if err := capture.err(); err != nil {
		return err
	}
	if rc != 0 {
		reason := capture.reason()
		if reason == "" {
			reason = "llama.cpp gave no reason"
		}
		return fmt.Errorf("llama: quantize %s to %s: %s", in, name, reason)
	}
	parts, err := os.ReadDir(tmpDir)
	if err != nil {
		return fmt.Errorf("llama: quantize: %w", err)
	}
	for _, p := range parts {
		if err := os.Rename(filepath.Join(tmpDir, p.Name()), filepath.Join(filepath.Dir(out), p.Name())); err != nil {
			return fmt.Errorf("llama: quantize: %w", err)
		}
	}
	return nil
}

// maxF16 is the largest finite F16 value.
const maxF16 = 65504

// checkFinite reads the F32, F16 and BF16 tensors of the model file f at
// path (without a split's other parts) for values llama.cpp's quantization
// would refuse after the fact (ggml_validate_row_data): NaN, infinities,
// and with toF16 F32 values beyond F16's range.
func checkFinite(ctx context.Context, path string, f *gguf.File, toF16 bool) error {
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("llama: %w", err)
	}
	defer r.Close()
	buf := make([]byte, 1<<20)
	for i, t := range f.Tensors {
		var width int
		switch t.Type {
		case gguf.TensorF32:
			width = 4
		case gguf.TensorF16, gguf.TensorBF16:
			width = 2
		default:
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sr := f.TensorReader(r, i)
		for n := int64(0); ; {
			k, err := io.ReadFull(sr, buf[:len(buf)/width*width])
			for j := 0; j+width <= k; j += width {
				var v float64
				switch t.Type {
				case gguf.TensorF32:
					v = float64(math.Float32frombits(binary.LittleEndian.Uint32(buf[j:])))
				case gguf.TensorF16:
					if h := binary.LittleEndian.Uint16(buf[j:]); h&0x7c00 == 0x7c00 {
						v = math.Inf(1)
						if h&0x3ff != 0 {
							v = math.NaN()
						}
					}
				case gguf.TensorBF16:
					v = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(buf[j:])) << 16))
				}
				switch {
				case math.IsNaN(v) || math.IsInf(v, 0):
					return fmt.Errorf("%w: %s: tensor %s holds %v at element %d, which cannot be quantized", ErrInvalidModel, path, t.Name, v, n+int64(j/width))
				case toF16 && math.Abs(v) > maxF16:
					return fmt.Errorf("%w: %s: tensor %s holds %v at element %d, beyond F16's range", ErrInvalidModel, path, t.Name, v, n+int64(j/width))
				}
			}
			n += int64(k / width)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return fmt.Errorf("llama: %s: %w", path, err)
			}
		}
	}
	return nil
}
