package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llamago/llamago/bench"
	"github.com/llamago/llamago/llama"
)

// Paired comparisons of bin/llamago with another program, process by
// process: each case (a model, a thread count) runs in both programs, one
// process after the other, for several rounds that alternate which goes
// first; a case's ratio is the geometric mean of the rounds' ratios, so
// that the machine's drift between rounds cancels out, with a 95%
// confidence interval from the rounds taken in pairs.
//
//   - "baseline" (make bench): bin/llamago-baseline, our C program linked
//     with llama.cpp as ggml's CMake builds it (scripts/baseline), against
//     `llamago bench` at its defaults. A separate process, unlike
//     `bench --native`, whose C loop shares the Go process and with it
//     every cost the Go runtime adds around ggml's threads.
//   - "cmake" (make bench-cmake): the same `llamago bench` commands with
//     bin/llamago, whose llama.cpp cgo compiles, and with a llamago linked
//     (-tags llama_system) with the CMake-built libraries: what compiling
//     llama.cpp through cgo costs or gains.
type comparison struct {
	name  string    // the document's section and the results' file prefix
	sides [2]string // column labels; side 0 is bin/llamago
	cases []compareCase
	// argv is the command line of a case on one side.
	argv func(side int, c compareCase) []string
}

// compareCase is one model file at one thread count; threads 0 is the
// programs' default.
type compareCase struct {
	name    string // for file names
	model   string // {{DIR}} and {{MODELS}} are substituted
	threads int
	reps    int // repetitions in a process
	rounds  int // processes per side
}

func (c compareCase) modelPath() string {
	return strings.NewReplacer("{{DIR}}", *dirFlag, "{{MODELS}}", *modelsFlag).Replace(c.model)
}

// threadCounts are the counts the comparisons run at: one thread, the
// default (physical cores) and every logical CPU, without repeats.
func threadCounts() []int {
	ts := []int{1, 0}
	if n := runtime.NumCPU(); n != llama.DefaultThreads() && n != 1 {
		ts = append(ts, n)
	}
	return ts
}

// baselineCases: stories260K, llama-60m at four types and tinyllama-1.1b
// at two, at each thread count. The 1.1B files are the slow part (half a
// minute to a minute a process on two cores): one repetition, two rounds.
func baselineCases() []compareCase {
	type m struct {
		name, path   string
		reps, rounds int
	}
	ms := []m{{"stories260K", "{{MODELS}}/stories260K.gguf", 10, 3}}
	for _, q := range quants {
		ms = append(ms, m{"llama-60m-" + q, "{{DIR}}/llama-60m/llama-60m-" + q + ".gguf", 4, 3})
	}
	for _, q := range []string{"Q8_0", "Q4_0"} {
		ms = append(ms, m{"tinyllama-1.1b-" + q, "{{DIR}}/tinyllama-1.1b/tinyllama-1.1b-" + q + ".gguf", 1, 2})
	}
	var cs []compareCase
	for _, x := range ms {
		for _, t := range threadCounts() {
			cs = append(cs, compareCase{name: x.name + "-t" + strconv.Itoa(t), model: x.path, threads: t, reps: x.reps, rounds: x.rounds})
		}
	}
	return cs
}

func baselineComparison(bin string) comparison {
	cases := baselineCases()
	if *quickFlag {
		cases = cases[:len(threadCounts())] // stories260K
		for i := range cases {
			cases[i].reps, cases[i].rounds = 3, 2
		}
	}
	return comparison{
		name: "baseline", sides: [2]string{"llamago", "C baseline"}, cases: cases,
		argv: func(side int, c compareCase) []string {
			if side == 0 {
				// llamago bench as a user runs it: its defaults, which
				// are llama-bench's, except where the case sets threads.
				a := []string{*binFlag, "bench", "-m", c.modelPath(), "-p", "512", "-n", "128", "-r", strconv.Itoa(c.reps), "-o", "jsonl"}
				if c.threads > 0 {
					a = append(a, "-t", strconv.Itoa(c.threads))
				}
				return a
			}
			t := c.threads
			if t == 0 {
				t = llama.DefaultThreads() // llama-bench's default too: the physical cores
			}
			return []string{bin, "-m", c.modelPath(), "-p", "512", "-n", "128", "-r", strconv.Itoa(c.reps), "-t", strconv.Itoa(t)}
		},
	}
}

// cmakeComparison: the tiny model only with one thread, llama-60m at one
// and two, the 1.1B shape at two.
func cmakeComparison(bin string) comparison {
	cases := []compareCase{{"stories260K", "{{MODELS}}/stories260K.gguf", 1, 10, 4}}
	for _, t := range []int{1, 2} {
		for _, q := range quants {
			cases = append(cases, compareCase{fmt.Sprintf("llama-60m-%s-t%d", q, t), "{{DIR}}/llama-60m/llama-60m-" + q + ".gguf", t, 3, 4})
		}
	}
	cases = append(cases, compareCase{"tinyllama-1.1b-Q4_0", "{{DIR}}/tinyllama-1.1b/tinyllama-1.1b-Q4_0.gguf", 2, 2, 4})
	return comparison{
		name: "cmake", sides: [2]string{"cgo build", "CMake build"}, cases: cases,
		argv: func(side int, c compareCase) []string {
			b := *binFlag
			if side == 1 {
				b = bin
			}
			return []string{b, "bench", "-m", c.modelPath(), "-t", strconv.Itoa(c.threads), "-p", "512", "-n", "128", "-r", strconv.Itoa(c.reps), "-o", "jsonl"}
		},
	}
}

func (cmp comparison) file(resDir string, c compareCase, side, round int) string {
	return filepath.Join(resDir, fmt.Sprintf("%s-%s-%d-%d.jsonl", cmp.name, c.name, side, round))
}

// measure runs the comparison and saves every process's output in resDir.
func (cmp comparison) measure(ctx context.Context, resDir string) error {
	warnLoad()
	for _, s := range shapes {
		if !slices.ContainsFunc(cmp.cases, func(c compareCase) bool { return strings.Contains(c.model, "/"+s+"/") }) {
			continue // -quick: stories260K only
		}
		if err := prepare(ctx, s); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(resDir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	rounds := 0
	for _, c := range cmp.cases {
		rounds = max(rounds, c.rounds)
	}
	for round := range rounds {
		for _, c := range cmp.cases {
			if round >= c.rounds {
				continue
			}
			order := []int{0, 1}
			if round%2 == 1 {
				order = []int{1, 0}
			}
			for _, side := range order {
				argv := cmp.argv(side, c)
				logf("%s round %d/%d, %s: %s", cmp.name, round+1, c.rounds, cmp.sides[side], strings.Join(argv, " "))
				var out bytes.Buffer
				cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
				cmd.Stdout, cmd.Stderr = &out, os.Stderr
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("%s, %s: %w", c.name, cmp.sides[side], err)
				}
				if err := os.WriteFile(cmp.file(resDir, c, side, round), out.Bytes(), 0o644); err != nil {
					return err
				}
			}
		}
	}
	logf("the %s comparison took %s", cmp.name, time.Since(start).Round(time.Second))
	return nil
}

// compareRow is one test of one case on both sides, a value per round.
type compareRow struct {
	label, test string
	threads     int
	ns          [2][]uint64
	ts          [2][]float64
}

// table renders the saved results: t/s means over the rounds, the ratio
// side 0 / side 1 with its interval, and each side's spread between
// processes (the coefficient of variation of the rounds' t/s).
func (cmp comparison) table(resDir string) (string, error) {
	var rows []*compareRow
	idx := map[string]*compareRow{}
	var when time.Time
	for _, c := range cmp.cases {
		for round := range c.rounds {
			for side := range 2 {
				f, err := os.Open(cmp.file(resDir, c, side, round))
				if err != nil {
					return "", err
				}
				rs, err := bench.ReadResults(f)
				f.Close()
				if err != nil {
					return "", fmt.Errorf("%s, %s, round %d: %w", c.name, cmp.sides[side], round, err)
				}
				for _, res := range rs {
					key := c.name + "/" + res.Test
					row := idx[key]
					if row == nil {
						row = &compareRow{label: filepath.Base(c.modelPath()), test: res.Test, threads: res.NThreads}
						idx[key] = row
						rows = append(rows, row)
					}
					row.ns[side] = append(row.ns[side], res.AvgNS)
					row.ts[side] = append(row.ts[side], res.AvgTS)
					if t, err := time.Parse(time.RFC3339, res.TestTime); err == nil && t.After(when) {
						when = t
					}
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s, in rounds of one process per side; t/s are means over the rounds; %s/%s is the geometric mean of the rounds' ratios, with its 95%% confidence interval; spread is the coefficient of variation of t/s between processes.\n\n",
		when.UTC().Format("2006-01-02 15:04 MST"), cpuModel(), cmp.sides[0], cmp.sides[1])
	fmt.Fprintf(&b, "| model file | test | threads | rounds | %s t/s | %s t/s | %s/%s | 95%% interval | spread %s | spread %s |\n",
		cmp.sides[0], cmp.sides[1], cmp.sides[0], cmp.sides[1], cmp.sides[0], cmp.sides[1])
	b.WriteString("| :-- | :-- | --: | --: | --: | --: | --: | :-: | --: | --: |\n")
	for _, r := range rows {
		if len(r.ns[0]) != len(r.ns[1]) {
			return "", fmt.Errorf("%s %s: %d rounds of %s, %d of %s", r.label, r.test, len(r.ns[0]), cmp.sides[0], len(r.ns[1]), cmp.sides[1])
		}
		var logs float64
		for i := range r.ns[0] {
			logs += math.Log(float64(r.ns[1][i]) / float64(r.ns[0][i]))
		}
		ratio := math.Exp(logs / float64(len(r.ns[0])))
		interval := ""
		if lo, hi, ok := bench.RatioCI(ratio, r.ns[0], r.ns[1]); ok {
			interval = fmt.Sprintf("%.3f–%.3f", lo, hi)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.2f | %.2f | %.3f | %s | %.1f%% | %.1f%% |\n",
			r.label, r.test, r.threads, len(r.ns[0]), bench.Mean(r.ts[0]), bench.Mean(r.ts[1]), ratio, interval, 100*cv(r.ts[0]), 100*cv(r.ts[1]))
	}
	return b.String(), nil
}

// cv is the coefficient of variation of xs.
func cv(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m := bench.Mean(xs)
	var s float64
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s/float64(len(xs)-1)) / m
}

// cpuModel is /proc/cpuinfo's model name.
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for l := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "an unknown CPU"
}
