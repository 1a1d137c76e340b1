package main

import (
	"bytes"
	"context"
	"github.com/llamago/llamago/internal/testmodels"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
)

// modelsDir is ../shared/models from the repository root, or
// $LLAMAGO_TEST_MODELS. The files are always present, so a missing
// directory fails the test rather than skipping it.
func modelsDir(t testing.TB) string {
	t.Helper()
	return testmodels.Dir(t)
}

func modelPath(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(modelsDir(t), name)
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of
// llama.cpp's log callback and the command.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cli runs the command line in-process, as main does, and returns what it
// wrote and its exit code.
func cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return cliContext(t, context.Background(), stdin, args...)
}

func cliContext(t *testing.T, ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut syncBuffer
	code = execute(ctx, args, &iostreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

// parseFlags runs the command line through the root command with sub in
// place of the real subcommand of the same name, and returns the exit code
// and the error. sub's runF records the options.
func parseFlags(t *testing.T, sub *cobra.Command, args ...string) (code int, err error) {
	t.Helper()
	streams := &iostreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	root := newRootCmd(streams)
	for _, c := range root.Commands() {
		if c.Name() == sub.Name() {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(sub)
	root.SetArgs(normalizeArgs(root, args))
	_, err = root.ExecuteC()
	return exitCode(err), err
}

// oneLine checks that stderr is exactly one line starting "llamago: ".
func oneLine(t *testing.T, stderr string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "llamago: ") || !strings.HasSuffix(stderr, "\n") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want one line \"llamago: ...\"", stderr)
	}
}

// buildLlamago builds the llamago binary into a temporary directory, with
// the race detector when the test binary has it, and returns its path.
//
// $LLAMAGO_TEST_BIN names a binary built beforehand instead, for test
// binaries run where there is no go command (under Wine:
// scripts/windows-test.sh).
func buildLlamago(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("LLAMAGO_TEST_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "llamago")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if llamaSystem {
		args = append(args, "-tags", "llama_system")
	}
	// The environment, the cgo flags of scripts/cgo-env.sh included, is
	// the test's own, so the build reuses the cached llama.cpp.
	build := exec.Command("go", append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
