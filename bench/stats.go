package bench

import (
	"math"
	"slices"
)

// Mean is the arithmetic mean of xs, or 0 for an empty slice.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// StdDev is the sample standard deviation of xs (Bessel's correction: the
// sum of squared deviations divided by n-1), as llama-bench reports it; 0
// for fewer than two values. It is computed in two passes, which stays
// exact for samples far from zero (nanosecond timings).
func StdDev(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m := Mean(xs)
	var ss float64
	for _, x := range xs {
		d := x - m
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(xs)-1))
}

// Percentile is the p-th percentile of xs (0 <= p <= 100), interpolating
// linearly between the closest ranks: the value at rank (n-1)·p/100 of the
// sorted sample, as numpy's default and R's type 7. It is 0 for an empty
// slice; xs is not modified.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return percentileSorted(s, p)
}

func percentileSorted(s []float64, p float64) float64 {
	p = min(max(p, 0), 100)
	r := float64(len(s)-1) * p / 100
	lo := int(math.Floor(r))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(r-float64(lo))
}

// Summary describes a sample.
type Summary struct {
	N      int
	Mean   float64
	StdDev float64
	Min    float64
	Max    float64
	P50    float64
	P95    float64
	P99    float64
}

// Summarize computes a sample's Summary.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Summary{
		N:      len(s),
		Mean:   Mean(s),
		StdDev: StdDev(s),
		Min:    s[0],
		Max:    s[len(s)-1],
		P50:    percentileSorted(s, 50),
		P95:    percentileSorted(s, 95),
		P99:    percentileSorted(s, 99),
	}
}

// Rate converts durations in nanoseconds into rates: n items per duration,
// per second (tokens/s from the time of a repetition).
func Rate(n int, samplesNS []uint64) []float64 {
	ts := make([]float64, len(samplesNS))
	for i, ns := range samplesNS {
		if ns > 0 {
			ts[i] = 1e9 * float64(n) / float64(ns)
		}
	}
	return ts
}

func floats(ns []uint64) []float64 {
	f := make([]float64, len(ns))
	for i, v := range ns {
		f[i] = float64(v)
	}
	return f
}
