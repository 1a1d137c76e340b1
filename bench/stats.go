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

// RatioCI is a 95% confidence interval for the ratio of two speeds measured
// in pairs: a[i] and b[i] are the times of repetition i of two loops run one
// after the other. Pairing takes out what drifts between repetitions (the
// machine's load, its clock), leaving the scatter of the per-pair log ratios
// log(b[i]/a[i]); the interval is ratio·exp(±t·se) with se their standard
// error and t Student's quantile for n-1 degrees of freedom. It returns
// ok = false for fewer than two pairs, unequal lengths or a zero time.
func RatioCI(ratio float64, a, b []uint64) (lo, hi float64, ok bool) {
	if len(a) < 2 || len(a) != len(b) {
		return 0, 0, false
	}
	logs := make([]float64, len(a))
	for i := range a {
		if a[i] == 0 || b[i] == 0 {
			return 0, 0, false
		}
		logs[i] = math.Log(float64(b[i]) / float64(a[i]))
	}
	half := studentT95(len(a)-1) * StdDev(logs) / math.Sqrt(float64(len(a)))
	return ratio * math.Exp(-half), ratio * math.Exp(half), true
}

// studentT95 is the two-sided 95% quantile of Student's t distribution
// with df degrees of freedom (df >= 1).
func studentT95(df int) float64 {
	table := [...]float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df <= len(table):
		return table[df-1]
	case df <= 40:
		return 2.021
	case df <= 60:
		return 2.000
	case df <= 120:
		return 1.980
	}
	return 1.960
}
