package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Formats are the output formats of NewPrinter, as llama-bench's -o.
var Formats = []string{"md", "csv", "json", "jsonl", "none"}

// Printer writes results as they are measured: Header once, Print for each
// result, Footer at the end.
type Printer interface {
	Header() error
	Print(r *Result) error
	Footer() error
}

// MarkdownOptions selects the optional columns of the markdown table.
type MarkdownOptions struct {
	// Params are the parameter columns shown between "backend" and
	// "test", by field name: n_gpu_layers, n_threads, n_batch, n_ubatch,
	// type_k, type_v, flash_attn, use_mmap. llama-bench shows threads on
	// CPU backends, ngl on others, and any parameter given a value other
	// than its default or several values.
	Params []string
	// Native adds the C loop's tokens/s and the Go/C ratio, with its 95%
	// confidence interval when there are two repetitions or more.
	Native bool
	// E2E adds the time to first token and the inter-token latencies;
	// with Images, the time to encode an e2e prompt's images too.
	E2E    bool
	Images bool
	// Spec adds the share of drafted tokens accepted, of end-to-end tests
	// with speculative decoding.
	Spec bool
	// Build is the footer's "build: ..." line; none if empty.
	Build string
}

// NewPrinter returns the printer of a format: md, csv, json, jsonl or
// none.
func NewPrinter(format string, w io.Writer, md MarkdownOptions) (Printer, error) {
	switch format {
	case "md":
		return &markdownPrinter{w: w, opts: md}, nil
	case "csv":
		return &csvPrinter{w: csv.NewWriter(w)}, nil
	case "json":
		return &jsonPrinter{w: w}, nil
	case "jsonl":
		return &jsonlPrinter{w: w}, nil
	case "none":
		return nonePrinter{}, nil
	}
	return nil, fmt.Errorf("bench: unknown output format %q (want %s)", format, strings.Join(Formats, ", "))
}

type nonePrinter struct{}

func (nonePrinter) Header() error       { return nil }
func (nonePrinter) Print(*Result) error { return nil }
func (nonePrinter) Footer() error       { return nil }

type csvPrinter struct{ w *csv.Writer }

func (p *csvPrinter) Header() error { return p.write(Fields()) }

func (p *csvPrinter) Print(r *Result) error { return p.write(r.values()) }

func (p *csvPrinter) Footer() error { return nil }

func (p *csvPrinter) write(rec []string) error {
	if err := p.w.Write(rec); err != nil {
		return err
	}
	p.w.Flush()
	return p.w.Error()
}

// jsonPrinter writes an array, one indented object per result, as
// llama-bench's -o json.
type jsonPrinter struct {
	w io.Writer
	n int
}

func (p *jsonPrinter) Header() error {
	_, err := io.WriteString(p.w, "[\n")
	return err
}

func (p *jsonPrinter) Print(r *Result) error {
	b, err := json.MarshalIndent(r, "  ", "  ")
	if err != nil {
		return err
	}
	sep := "  "
	if p.n > 0 {
		sep = ",\n  "
	}
	p.n++
	_, err = fmt.Fprintf(p.w, "%s%s", sep, b)
	return err
}

func (p *jsonPrinter) Footer() error {
	s := "\n]\n"
	if p.n == 0 {
		s = "]\n"
	}
	_, err := io.WriteString(p.w, s)
	return err
}

type jsonlPrinter struct{ w io.Writer }

func (p *jsonlPrinter) Header() error { return nil }

func (p *jsonlPrinter) Print(r *Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(p.w, "%s\n", b)
	return err
}

func (p *jsonlPrinter) Footer() error { return nil }

// markdownPrinter writes llama-bench's table: model, size, params,
// backend, the parameter columns, test, t/s; then llamago's columns.
type markdownPrinter struct {
	w      io.Writer
	opts   MarkdownOptions
	cols   []string
	models []*Result // first result of each model, with its latest peak RSS
}

// column widths as llama-bench's: negative for left-aligned.
var mdWidth = map[string]int{
	"model": -30, "size": 10, "params": 10, "backend": -10, "n_gpu_layers": 3, "n_threads": 7,
	"n_batch": 7, "n_ubatch": 8, "type_k": 6, "type_v": 6, "flash_attn": 3, "use_mmap": 4,
	"test": 20, "t/s": 20, "accepted": 16, "C t/s": 20, "Go/C": 21, "TTFT ms": 16, "ITL p50/p95/p99 ms": 22, "image ms": 10,
}

var mdName = map[string]string{
	"n_gpu_layers": "ngl", "n_threads": "threads", "flash_attn": "fa", "use_mmap": "mmap",
}

func (p *markdownPrinter) Header() error {
	p.cols = append([]string{"model", "size", "params", "backend"}, p.opts.Params...)
	p.cols = append(p.cols, "test", "t/s")
	if p.opts.Native {
		p.cols = append(p.cols, "C t/s", "Go/C")
	}
	if p.opts.E2E {
		p.cols = append(p.cols, "TTFT ms", "ITL p50/p95/p99 ms")
		if p.opts.Images {
			p.cols = append(p.cols, "image ms")
		}
	}
	if p.opts.Spec {
		p.cols = append(p.cols, "accepted")
	}
	var head, rule strings.Builder
	head.WriteString("|")
	rule.WriteString("|")
	for _, c := range p.cols {
		w := mdWidth[c]
		if w == 0 {
			w = max(len(c), 10)
		}
		name := c
		if n, ok := mdName[c]; ok {
			name = n
		}
		head.WriteString(" " + pad(name, w) + " |")
		end := "-"
		if w > 0 {
			end = ":"
		}
		rule.WriteString(" " + strings.Repeat("-", abs(w)-1) + end + " |")
	}
	_, err := fmt.Fprintf(p.w, "%s\n%s\n", head.String(), rule.String())
	return err
}

func (p *markdownPrinter) Print(r *Result) error {
	var b strings.Builder
	b.WriteString("|")
	for _, c := range p.cols {
		w := mdWidth[c]
		if w == 0 {
			w = max(len(c), 10)
		}
		b.WriteString(" " + pad(mdValue(r, c), w) + " |")
	}
	p.track(r)
	_, err := fmt.Fprintln(p.w, b.String())
	return err
}

func (p *markdownPrinter) track(r *Result) {
	for _, m := range p.models {
		if m.ModelFilename == r.ModelFilename && m.LoadNS == r.LoadNS {
			m.PeakRSS = max(m.PeakRSS, r.PeakRSS)
			return
		}
	}
	c := *r
	p.models = append(p.models, &c)
}

// Footer writes the build line, and a table of each model's load time
// and peak resident memory.
func (p *markdownPrinter) Footer() error {
	if p.opts.Build != "" {
		if _, err := fmt.Fprintf(p.w, "\nbuild: %s\n", p.opts.Build); err != nil {
			return err
		}
	}
	if len(p.models) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("\n| model file                     | load ms |   peak RSS |\n")
	b.WriteString("| :----------------------------- | ------: | ---------: |\n")
	for _, m := range p.models {
		fmt.Fprintf(&b, "| %s | %7.1f | %10s |\n", pad(m.ModelLabel(), -30), float64(m.LoadNS)/1e6, FormatBytes(m.PeakRSS))
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

func mdValue(r *Result, col string) string {
	switch col {
	case "model":
		return r.ModelType
	case "size":
		return FormatBytes(r.ModelSize)
	case "params":
		return FormatParams(r.ModelNParams)
	case "backend":
		return r.Backends
	case "n_gpu_layers":
		return fmt.Sprint(r.NGPULayers)
	case "n_threads":
		return fmt.Sprint(r.NThreads)
	case "n_batch":
		return fmt.Sprint(r.NBatch)
	case "n_ubatch":
		return fmt.Sprint(r.NUBatch)
	case "type_k":
		return r.TypeK
	case "type_v":
		return r.TypeV
	case "flash_attn":
		return fmt.Sprint(r.FlashAttn)
	case "use_mmap":
		if r.UseMmap {
			return "1"
		}
		return "0"
	case "test":
		return r.Test
	case "t/s":
		return fmt.Sprintf("%.2f ± %.2f", r.AvgTS, r.StddevTS)
	case "C t/s":
		if r.NativeAvgTS == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f ± %.2f", r.NativeAvgTS, r.NativeStddevTS)
	case "Go/C":
		if r.GoCRatio == 0 {
			return ""
		}
		if r.GoCRatioHigh > 0 {
			return fmt.Sprintf("%.3f (%.3f–%.3f)", r.GoCRatio, r.GoCRatioLow, r.GoCRatioHigh)
		}
		return fmt.Sprintf("%.3f", r.GoCRatio)
	case "TTFT ms":
		if r.TTFTAvgNS == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f ± %.2f", float64(r.TTFTAvgNS)/1e6, float64(r.TTFTStddevNS)/1e6)
	case "image ms":
		if r.ImageEncodeAvgNS == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f", float64(r.ImageEncodeAvgNS)/1e6)
	case "accepted":
		if r.DraftTokens == 0 {
			return ""
		}
		return fmt.Sprintf("%d/%d %.0f%%", r.AcceptedTokens, r.DraftTokens, 100*r.AcceptanceRate)
	case "ITL p50/p95/p99 ms":
		if r.ITLP50NS == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f/%.2f/%.2f", float64(r.ITLP50NS)/1e6, float64(r.ITLP95NS)/1e6, float64(r.ITLP99NS)/1e6)
	}
	return ""
}

// FormatBytes renders a size as llama-bench does: MiB below 1 GiB, GiB
// from there.
func FormatBytes(n uint64) string {
	if n < 1<<30 {
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// FormatParams renders a parameter count as llama-bench does: millions
// below a billion, billions from there.
func FormatParams(n uint64) string {
	if n < 1e9 {
		return fmt.Sprintf("%.2f M", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f B", float64(n)/1e9)
}

// pad aligns s in a field of |w| characters: right-aligned for w > 0,
// left-aligned for w < 0, as printf's %*s.
func pad(s string, w int) string {
	n := abs(w) - utf8.RuneCountInString(s)
	if n <= 0 {
		return s
	}
	if w > 0 {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
