// Command winetest reads `go test -json` output of tests run under Wine
// (scripts/windows-test.sh) and sorts the failures:
//
//   - cleanup: the test's output has t.TempDir's "RemoveAll cleanup: ...
//     Invalid function." Go 1.26's os.RemoveAll deletes files through
//     NtSetInformationFile(FileDispositionInformationEx), which Wine 8.0
//     does not implement, so every test that uses t.TempDir fails in its
//     cleanup. The test's other output lines are printed: a genuine
//     failure of the same test shows there, and is not counted;
//   - known: the tests named by -known (a regular expression over names
//     such as llama.TestComplete: the package's last element, a dot and
//     the test), with a documented reason (docs/windows.md);
//   - unexpected: the others, which make winetest exit with status 1.
//
// A test that fails only because a subtest failed is not listed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

var cleanupRE = regexp.MustCompile(`TempDir RemoveAll cleanup: .*Invalid function`)

func main() {
	known := flag.String("known", "", "regular expression of the tests known to fail, named as package.Test")
	flag.Parse()
	var knownRE *regexp.Regexp
	if *known != "" {
		knownRE = regexp.MustCompile("^(" + *known + ")$")
	}

	output := map[string][]string{}
	result := map[string]string{}
	var order []string
	var pkgResult []string
	pkgFailed := false
	s := bufio.NewScanner(os.Stdin)
	s.Buffer(make([]byte, 1<<20), 1<<24)
	for s.Scan() {
		var e event
		if json.Unmarshal(s.Bytes(), &e) != nil {
			fmt.Println(s.Text()) // build errors and the like
			continue
		}
		if e.Test == "" {
			switch e.Action {
			case "pass", "fail":
				pkgResult = append(pkgResult, e.Action+" "+e.Package)
				if e.Action == "fail" {
					pkgFailed = true
				}
			case "build-output", "build-fail":
				fmt.Print(e.Output) // compiler errors
			}
			continue
		}
		// Tests are named by package and test, as llama.TestComplete.
		name := path.Base(e.Package) + "." + e.Test
		switch e.Action {
		case "run":
			order = append(order, name)
		case "output":
			line := strings.TrimRight(e.Output, "\r\n")
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- ") {
				output[name] = append(output[name], t)
			}
		case "pass", "fail", "skip":
			result[name] = e.Action
		}
	}

	hasFailedChild := map[string]bool{}
	for t, r := range result {
		if r == "fail" {
			for p := t; strings.Contains(p, "/"); {
				p = p[:strings.LastIndex(p, "/")]
				hasFailedChild[p] = true
			}
		}
	}
	counts := map[string]int{}
	var unexpected, cleanup, knownFail []string
	for _, t := range order {
		r := result[t]
		counts[r]++
		if r != "fail" {
			continue
		}
		lines := output[t]
		switch {
		case knownRE != nil && knownRE.MatchString(t):
			knownFail = append(knownFail, t)
		case containsCleanup(lines):
			cleanup = append(cleanup, t)
		case hasFailedChild[t]:
		default:
			unexpected = append(unexpected, t)
		}
	}
	fmt.Printf("%d passed, %d skipped, %d failed\n", counts["pass"], counts["skip"], counts["fail"])
	report := func(title string, tests []string, showCleanup bool) {
		if len(tests) == 0 {
			return
		}
		sort.Strings(tests)
		fmt.Printf("%s (%d):\n", title, len(tests))
		for _, t := range tests {
			fmt.Printf("  %s\n", t)
			for _, l := range output[t] {
				if showCleanup || !cleanupRE.MatchString(l) {
					fmt.Printf("      %s\n", l)
				}
			}
		}
	}
	report("failed only in t.TempDir's cleanup under Wine 8.0 (their other output below)", cleanup, false)
	report("known failures (docs/windows.md)", knownFail, false)
	report("UNEXPECTED failures", unexpected, true)
	for _, p := range pkgResult {
		fmt.Println(p)
	}
	// No test passed, or the package failed with no test failing (a build
	// error, a crash): nothing was verified.
	if len(unexpected) > 0 || counts["pass"] == 0 || pkgFailed && counts["fail"] == 0 {
		os.Exit(1)
	}
}

func containsCleanup(lines []string) bool {
	for _, l := range lines {
		if cleanupRE.MatchString(l) {
			return true
		}
	}
	return false
}
