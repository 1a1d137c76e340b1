package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/llamago/llamago/bench"
)

// The comparison with llama.cpp built the way upstream builds it
// (make bench-cmake): the same `llamago bench` commands run with -bin,
// whose llama.cpp cgo compiles, and with -cmake, a llamago linked
// (-tags llama_system) with the libraries that ggml's own CMake build
// made from the same sources (make system-llama: Release, GGML_NATIVE,
// OpenMP, llamafile, repacking). Rounds alternate which binary goes first,
// and each case's ratio is taken from the rounds in pairs, so that the
// machine's drift between rounds cancels out.

// cmakeRounds is how many times each binary runs each command.
const cmakeRounds = 4

// cmakeRuns are the commands, after "bench". The tiny model only with one
// thread (two are five times slower here, whatever the build); the 1.1B
// shape with two, the default on this machine.
func cmakeRuns() []benchRun {
	return []benchRun{
		{"stories260K", strings.Fields("-m {{MODELS}}/stories260K.gguf -t 1 -p 512 -n 128 -r 10"), false},
		{"llama-60m", strings.Fields("-m {{DIR}}/llama-60m -t 1,2 -p 512 -n 128 -r 3"), false},
		{"tinyllama-1.1b", strings.Fields("-m {{DIR}}/tinyllama-1.1b/tinyllama-1.1b-Q4_0.gguf -t 2 -p 512 -n 128 -r 2"), false},
	}
}

// cmakeFile is where a run's results are kept: one file per command,
// build and round.
func cmakeFile(resDir, name, build string, round int) string {
	return filepath.Join(resDir, fmt.Sprintf("cmake-%s-%s-%d.jsonl", name, build, round))
}

var cmakeBuilds = [2]string{"cgo", "cmake"}

// measureCMake runs the comparison and saves the results in resDir.
func measureCMake(ctx context.Context, resDir string) error {
	warnLoad()
	if err := prepare(ctx, "llama-60m"); err != nil {
		return err
	}
	if err := prepare(ctx, "tinyllama-1.1b"); err != nil {
		return err
	}
	if err := os.MkdirAll(resDir, 0o755); err != nil {
		return err
	}
	bins := map[string]string{"cgo": *binFlag, "cmake": *cmakeFlag}
	start := time.Now()
	for round := range cmakeRounds {
		order := cmakeBuilds
		if round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, r := range cmakeRuns() {
			for _, build := range order {
				args := []string{"bench"}
				for _, a := range r.args {
					args = append(args, strings.NewReplacer("{{DIR}}", *dirFlag, "{{MODELS}}", *modelsFlag).Replace(a))
				}
				args = append(args, "-o", "jsonl")
				logf("round %d/%d, %s build: %s", round+1, cmakeRounds, build, strings.Join(args, " "))
				var out bytes.Buffer
				cmd := exec.CommandContext(ctx, bins[build], args...)
				cmd.Stdout, cmd.Stderr = &out, os.Stderr
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("%s, %s build: %w", r.name, build, err)
				}
				if err := os.WriteFile(cmakeFile(resDir, r.name, build, round), out.Bytes(), 0o644); err != nil {
					return err
				}
			}
		}
	}
	logf("the comparison took %s", time.Since(start).Round(time.Second))
	return nil
}

// cmakeCase is one test of one model and thread count, in both builds.
type cmakeCase struct {
	label, test string
	threads     int
	ns          [2][]uint64 // mean time of a repetition per round, per build
	ts          [2][]float64
}

// cmakeTable renders the saved results as the document's "cmake" section.
func cmakeTable(resDir string) (string, error) {
	var cases []*cmakeCase
	idx := map[string]*cmakeCase{}
	var when time.Time
	for _, r := range cmakeRuns() {
		for round := range cmakeRounds {
			for bi, build := range cmakeBuilds {
				f, err := os.Open(cmakeFile(resDir, r.name, build, round))
				if err != nil {
					return "", err
				}
				rs, err := bench.ReadResults(f)
				f.Close()
				if err != nil {
					return "", fmt.Errorf("%s, %s build, round %d: %w", r.name, build, round, err)
				}
				for _, res := range rs {
					key := fmt.Sprintf("%s/%s/%d", res.ModelLabel(), res.Test, res.NThreads)
					c := idx[key]
					if c == nil {
						c = &cmakeCase{label: res.ModelLabel(), test: res.Test, threads: res.NThreads}
						idx[key] = c
						cases = append(cases, c)
					}
					c.ns[bi] = append(c.ns[bi], res.AvgNS)
					c.ts[bi] = append(c.ts[bi], res.AvgTS)
					if t, err := time.Parse(time.RFC3339, res.TestTime); err == nil && t.After(when) {
						when = t
					}
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s, %d rounds; t/s are the means over the rounds; cgo/CMake is the geometric mean of the rounds' ratios, with its 95%% confidence interval.\n\n",
		when.UTC().Format("2006-01-02 15:04 MST"), cmakeRounds)
	b.WriteString("| model file | test | threads | cgo build t/s | CMake build t/s | cgo/CMake | 95% interval |\n")
	b.WriteString("| :-- | :-- | --: | --: | --: | --: | :-: |\n")
	for _, c := range cases {
		if len(c.ns[0]) != len(c.ns[1]) {
			return "", fmt.Errorf("%s %s: %d rounds of the cgo build, %d of the CMake build", c.label, c.test, len(c.ns[0]), len(c.ns[1]))
		}
		var logs float64
		for i := range c.ns[0] {
			logs += math.Log(float64(c.ns[1][i]) / float64(c.ns[0][i]))
		}
		ratio := math.Exp(logs / float64(len(c.ns[0])))
		interval := ""
		if lo, hi, ok := bench.RatioCI(ratio, c.ns[0], c.ns[1]); ok {
			interval = fmt.Sprintf("%.3f–%.3f", lo, hi)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %.2f | %.2f | %.3f | %s |\n",
			c.label, c.test, c.threads, bench.Mean(c.ts[0]), bench.Mean(c.ts[1]), ratio, interval)
	}
	return b.String(), nil
}
