package bench

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestMeasureBandwidth(t *testing.T) {
	bw := MeasureBandwidth(8<<20, 2, 1)
	if bw.Threads != 2 || bw.BufferBytes != 8<<20 || bw.Read <= 0 || bw.Copy <= 0 {
		t.Errorf("MeasureBandwidth = %+v", bw)
	}
	if got := sum([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}); got != 66 {
		t.Errorf("sum = %d, want 66", got)
	}
}

func TestPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS reset is Linux's")
	}
	if !ResetPeakRSS() {
		t.Fatal("ResetPeakRSS failed")
	}
	before := PeakRSS()
	buf := make([]byte, 64<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	after := PeakRSS()
	runtime.KeepAlive(buf)
	if before == 0 || after < before+48<<20 {
		t.Errorf("peak RSS %d before touching 64 MiB, %d after", before, after)
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, false)
	p.Update("model %d", 1)
	p.Clear()
	p.Update("model %d", 2)
	if got := b.String(); !strings.HasSuffix(got, "] model 2\n") || strings.Count(got, "\n") != 2 || strings.Contains(got, "\r") {
		t.Errorf("non-terminal progress = %q", got)
	}
	b.Reset()
	p = NewProgress(&b, true)
	p.Update("a")
	p.Update("b")
	p.Clear()
	p.Clear()
	if got := b.String(); strings.Count(got, "\r\x1b[K") != 3 || strings.Contains(got, "\n") || !strings.Contains(got, "] b") {
		t.Errorf("terminal progress = %q", got)
	}
	var nilP *Progress
	nilP.Update("x") // a nil Progress is off
	nilP.Clear()
}

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	rs := sampleResults()
	for _, name := range []string{"p.svg", "p.png"} {
		path := filepath.Join(dir, name)
		if err := PlotFile(path, rs); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(name) {
		case ".svg":
			for _, s := range []string{"<svg", "pp512", "tg128", "e2e16+4", "llama-60m-Q4_0", "tinyllama-1.1b-F16", "C loop (native)"} {
				if !bytes.Contains(b, []byte(s)) {
					t.Errorf("SVG lacks %q", s)
				}
			}
		case ".png":
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("PNG does not decode: %v", err)
			}
			if img.Bounds().Dx() < 300 || img.Bounds().Dy() < 300 {
				t.Errorf("PNG is %v", img.Bounds())
			}
		}
	}
	// Rates spanning three orders of magnitude take a log scale.
	wide := sampleResults()[:2]
	wide[1].AvgTS, wide[1].StddevTS, wide[1].Test = 0.5, 2, "pp512"
	if err := Plot(&bytes.Buffer{}, "svg", wide); err != nil {
		t.Errorf("log-scale plot: %v", err)
	}
	if err := PlotFile(filepath.Join(dir, "p.pdf"), rs); err == nil {
		t.Error("PlotFile wrote a .pdf")
	}
	if err := Plot(&bytes.Buffer{}, "svg", nil); err == nil {
		t.Error("Plot of no results succeeded")
	}
	// A rate of 0 (a test shorter than a tick of a coarse clock) beside
	// rates that take a log scale is left out, not a panic; with nothing
	// but zeros there is nothing to plot.
	zero := sampleResults()[:3]
	zero[1].AvgTS, zero[1].StddevTS, zero[1].Test = 0.5, 2, "pp512"
	zero[2].AvgTS, zero[2].StddevTS, zero[2].Test = 0, 0, "pp512"
	if err := Plot(&bytes.Buffer{}, "svg", zero); err != nil {
		t.Errorf("plot with a zero rate: %v", err)
	}
	for i := range zero {
		zero[i].AvgTS, zero[i].NativeAvgTS = 0, 0
	}
	if err := Plot(&bytes.Buffer{}, "svg", zero); err == nil {
		t.Error("Plot of zero rates only succeeded")
	}
}
