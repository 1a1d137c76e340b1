// Command portablecheck measures how much slower a portable llamago build
// (make PORTABLE=1: generic x86-64 code) is than the native one
// (-march=native), with and without the CPU backend libraries of
// scripts/cpu-variants.sh, and prints a markdown table for docs/portable.md.
//
// The three configurations run in turns (native, portable without
// libraries, portable with them), the order rotating from round to round,
// so that a busy machine slows them alike; each ratio is computed within a
// round and the table gives the median over rounds with its range.
//
//	go run ./scripts/portablecheck -native bin/llamago -portable bin/portable/llamago \
//		-variants bin/portable -m ../shared/models/stories260K.gguf,model.gguf
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

type config struct {
	name, bin, variants string // variants: LLAMAGO_CPU_VARIANTS
}

type result struct {
	Test  string  `json:"test"`
	AvgTS float64 `json:"avg_ts"`
}

func main() {
	native := flag.String("native", "bin/llamago", "native llamago")
	portable := flag.String("portable", "bin/portable/llamago", "portable llamago (make PORTABLE=1)")
	variants := flag.String("variants", "", "directory of libggml-cpu-*.so (default: the portable binary's)")
	models := flag.String("m", "", "comma-separated model files (required)")
	rounds := flag.Int("rounds", 3, "rounds of the three configurations")
	benchArgs := flag.String("bench", "-p 128 -n 32 -r 3 -t 1", "llamago bench flags")
	flag.Parse()
	if *models == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *variants == "" {
		*variants = filepath.Dir(*portable)
	}
	configs := []config{
		{"native", *native, "off"},
		{"portable", *portable, "off"},
		{"portable+variant", *portable, *variants},
	}
	for _, c := range configs {
		out, err := run(c, "version")
		if err != nil {
			fatal(err)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "system:") {
				fmt.Printf("%-17s %s\n", c.name, strings.TrimSpace(strings.TrimPrefix(l, "system:")))
			}
		}
	}
	fmt.Println()

	// speeds[model][test][config] holds one tokens/s per round.
	speeds := map[string]map[string][][]float64{}
	var tests []string
	ms := strings.Split(*models, ",")
	for r := range *rounds {
		for _, m := range ms {
			for k := range configs {
				ci := (k + r) % len(configs)
				args := append([]string{"bench", "-m", m, "-o", "jsonl"}, strings.Fields(*benchArgs)...)
				out, err := run(configs[ci], args...)
				if err != nil {
					fatal(err)
				}
				s := bufio.NewScanner(strings.NewReader(out))
				for s.Scan() {
					var res result
					if json.Unmarshal(s.Bytes(), &res) != nil || res.Test == "" {
						continue
					}
					if speeds[m] == nil {
						speeds[m] = map[string][][]float64{}
					}
					if speeds[m][res.Test] == nil {
						speeds[m][res.Test] = make([][]float64, len(configs))
						if !slices.Contains(tests, res.Test) {
							tests = append(tests, res.Test)
						}
					}
					speeds[m][res.Test][ci] = append(speeds[m][res.Test][ci], res.AvgTS)
					fmt.Fprintf(os.Stderr, "round %d %s %s %s: %.1f t/s\n", r+1, filepath.Base(m), res.Test, configs[ci].name, res.AvgTS)
				}
			}
		}
	}

	fmt.Printf("| model | test | native t/s | portable t/s | portable/native | portable+variant t/s | +variant/native |\n")
	fmt.Printf("|---|---|--:|--:|--:|--:|--:|\n")
	for _, m := range ms {
		for _, t := range tests {
			sp := speeds[m][t]
			if sp == nil {
				continue
			}
			row := fmt.Sprintf("| %s | %s | %.1f", filepath.Base(m), t, median(sp[0]))
			for ci := 1; ci < len(configs); ci++ {
				var ratios []float64
				for r := range min(len(sp[0]), len(sp[ci])) {
					ratios = append(ratios, sp[ci][r]/sp[0][r])
				}
				row += fmt.Sprintf(" | %.1f | %.2f (%.2f–%.2f)", median(sp[ci]), median(ratios), slices.Min(ratios), slices.Max(ratios))
			}
			fmt.Println(row + " |")
		}
	}
}

func run(c config, args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "LLAMAGO_CPU_VARIANTS="+c.variants)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", c.bin, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "portablecheck:", err)
	os.Exit(1)
}
