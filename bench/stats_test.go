package bench

import (
	"math"
	"slices"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func TestMeanStdDev(t *testing.T) {
	tests := []struct {
		xs         []float64
		mean, sdev float64
	}{
		{nil, 0, 0},
		{[]float64{3}, 3, 0},
		{[]float64{1, 2, 3, 4}, 2.5, 1.2909944487358056},
		// The textbook sample: mean 5, squared deviations summing to 32.
		{[]float64{2, 4, 4, 4, 5, 5, 7, 9}, 5, math.Sqrt(32.0 / 7)},
		// Large values close together, as nanosecond timings: a one-pass
		// formula loses every digit here.
		{[]float64{1e12 + 1, 1e12 + 2, 1e12 + 3}, 1e12 + 2, 1},
	}
	for _, tt := range tests {
		if got := Mean(tt.xs); !near(got, tt.mean, 1e-12) {
			t.Errorf("Mean(%v) = %v, want %v", tt.xs, got, tt.mean)
		}
		if got := StdDev(tt.xs); !near(got, tt.sdev, 1e-9) {
			t.Errorf("StdDev(%v) = %v, want %v", tt.xs, got, tt.sdev)
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5} // 1..10, shuffled
	orig := slices.Clone(xs)
	// numpy.percentile(range(1, 11), p), linear interpolation.
	for p, want := range map[float64]float64{0: 1, 25: 3.25, 50: 5.5, 90: 9.1, 95: 9.55, 99: 9.91, 100: 10} {
		if got := Percentile(xs, p); !near(got, want, 1e-12) {
			t.Errorf("Percentile(1..10, %v) = %v, want %v", p, got, want)
		}
	}
	if !slices.Equal(xs, orig) {
		t.Error("Percentile reordered its input")
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("Percentile of one value = %v, want 7", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
	if got := Percentile([]float64{1, 2}, 150); got != 2 {
		t.Errorf("Percentile above 100 = %v, want the maximum", got)
	}

	s := Summarize(xs)
	want := Summary{N: 10, Mean: 5.5, StdDev: StdDev(xs), Min: 1, Max: 10, P50: 5.5, P95: 9.55, P99: 9.91}
	if !near(s.P95, want.P95, 1e-12) || !near(s.P99, want.P99, 1e-12) {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	s.P95, s.P99 = want.P95, want.P99
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
}

func TestRate(t *testing.T) {
	got := Rate(8, []uint64{2e9, 1e9, 0})
	if want := []float64{4, 8, 0}; !slices.Equal(got, want) {
		t.Errorf("Rate = %v, want %v", got, want)
	}
}

func TestFinish(t *testing.T) {
	r := Result{NPrompt: 512, SamplesNS: []uint64{1e9, 2e9}}
	r.Finish()
	if r.Test != "pp512" {
		t.Errorf("Test = %q", r.Test)
	}
	// 512 tokens in 1 s and in 2 s: 512 and 256 tokens/s.
	if !slices.Equal(r.SamplesTS, []float64{512, 256}) {
		t.Errorf("SamplesTS = %v", r.SamplesTS)
	}
	if r.AvgNS != 1.5e9 || r.StddevNS != 707106781 {
		t.Errorf("AvgNS, StddevNS = %d, %d; want 1500000000, 707106781", r.AvgNS, r.StddevNS)
	}
	if r.AvgTS != 384 || !near(r.StddevTS, 128*math.Sqrt2, 1e-12) {
		t.Errorf("AvgTS, StddevTS = %v, %v; want 384, %v", r.AvgTS, r.StddevTS, 128*math.Sqrt2)
	}
	if r.GoCRatio != 0 || r.NativeAvgTS != 0 || r.TTFTAvgNS != 0 || r.ITLP50NS != 0 {
		t.Errorf("optional statistics set without their samples: %+v", r)
	}

	// The C loop at 640 tokens/s against Go at 320 and 640: ratio 0.75.
	n := Result{NGen: 128, SamplesNS: []uint64{4e8, 2e8}, NativeSamplesNS: []uint64{2e8, 2e8}}
	n.Finish()
	if n.Test != "tg128" || n.NativeAvgTS != 640 || n.NativeStddevTS != 0 || n.AvgTS != 480 || n.GoCRatio != 0.75 {
		t.Errorf("native: test %q, Go %v t/s, C %v ± %v t/s, ratio %v; want tg128, 480, 640 ± 0, 0.75",
			n.Test, n.AvgTS, n.NativeAvgTS, n.NativeStddevTS, n.GoCRatio)
	}
	// Pairs in ratios 0.5 and 1 around 0.75: 0.75·exp(±12.706·0.49012/√2).
	if !near(n.GoCRatioLow, 0.0091752, 1e-6) || !near(n.GoCRatioHigh, 61.306, 1e-2) {
		t.Errorf("native: ratio interval %v to %v; want 0.0091752 to 61.306", n.GoCRatioLow, n.GoCRatioHigh)
	}

	e := Result{NPrompt: 16, NGen: 4, E2E: true, SamplesNS: []uint64{2e7}, TTFTSamplesNS: []uint64{3e6, 5e6}}
	e.AddITL(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	e.Finish()
	if e.Test != "e2e16+4" || e.AvgTS != 1000 || e.TTFTAvgNS != 4e6 || e.TTFTStddevNS != 1414214 {
		t.Errorf("e2e: test %q, %v t/s, TTFT %d ± %d", e.Test, e.AvgTS, e.TTFTAvgNS, e.TTFTStddevNS)
	}
	// Rounded numpy percentiles of 1..10: 5.5, 9.55, 9.91.
	if e.ITLAvgNS != 6 || e.ITLP50NS != 6 || e.ITLP95NS != 10 || e.ITLP99NS != 10 {
		t.Errorf("ITL mean/p50/p95/p99 = %d/%d/%d/%d, want 6/6/10/10", e.ITLAvgNS, e.ITLP50NS, e.ITLP95NS, e.ITLP99NS)
	}
}

func TestTestName(t *testing.T) {
	for _, tt := range []struct {
		p, n int
		e2e  bool
		want string
	}{{512, 0, false, "pp512"}, {0, 128, false, "tg128"}, {512, 128, false, "pp512+tg128"}, {512, 128, true, "e2e512+128"}} {
		if got := TestName(tt.p, tt.n, tt.e2e); got != tt.want {
			t.Errorf("TestName(%d, %d, %v) = %q, want %q", tt.p, tt.n, tt.e2e, got, tt.want)
		}
	}
}

func TestRatioCI(t *testing.T) {
	// Log ratios ln 1.1 and ln 0.9: standard deviation 0.14190, standard
	// error 0.10034, t = 12.706 for one degree of freedom.
	lo, hi, ok := RatioCI(1, []uint64{100, 200}, []uint64{110, 180})
	if !ok || !near(lo, 0.279470, 1e-5) || !near(hi, 3.578204, 1e-5) {
		t.Errorf("RatioCI = %v, %v, %v; want 0.279470, 3.578204", lo, hi, ok)
	}
	// Every pair in the same proportion: no scatter, a point.
	lo, hi, ok = RatioCI(0.5, []uint64{10, 20, 40}, []uint64{5, 10, 20})
	if !ok || !near(lo, 0.5, 1e-12) || !near(hi, 0.5, 1e-12) {
		t.Errorf("RatioCI of constant pairs = %v, %v, %v; want 0.5, 0.5", lo, hi, ok)
	}
	for _, c := range []struct{ a, b []uint64 }{
		{[]uint64{1}, []uint64{1}},
		{[]uint64{1, 2}, []uint64{1}},
		{[]uint64{1, 0}, []uint64{1, 2}},
	} {
		if _, _, ok := RatioCI(1, c.a, c.b); ok {
			t.Errorf("RatioCI(%v, %v) ok", c.a, c.b)
		}
	}
	// Many pairs: the normal quantile.
	if got := studentT95(1000); got != 1.96 {
		t.Errorf("studentT95(1000) = %v", got)
	}
}
