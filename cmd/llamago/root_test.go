package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitError},
		{usageErrorf("bad flag"), exitUsage},
		{fmt.Errorf("wrapped: %w", usageErrorf("bad flag")), exitUsage},
		{context.Canceled, exitInterrupt},
		{fmt.Errorf("llama: decode: %w", context.Canceled), exitInterrupt},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestErrorLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"llama: invalid grammar", "invalid grammar"},
		{"model file x does not exist", "model file x does not exist"},
		{"parse error:\nline 2\r\nline 3\n", "parse error: line 2 line 3"},
	}
	for _, tt := range tests {
		if got := errorLine(errors.New(tt.in)); got != tt.want {
			t.Errorf("errorLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRootHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"run", "--help"}, {"tokenize", "-h"}} {
		stdout, stderr, code := cli(t, "", args...)
		if code != exitOK || stderr != "" || !strings.Contains(stdout, "Usage:") {
			t.Errorf("%q: exit %d, stderr %q, stdout %q", args, code, stderr, stdout)
		}
	}
}

// TestBinary builds llamago and checks, as a subprocess, its exit codes and
// how it stops on SIGINT.
func TestBinary(t *testing.T) {
	bin := buildLlamago(t)
	stories := modelPath(t, "stories260K.gguf")

	t.Run("exit codes", func(t *testing.T) {
		tests := []struct {
			args       []string
			wantCode   int
			wantStdout string // prefix
			wantStderr string // in the one line
		}{
			{[]string{"run", "-m", stories, "--temp", "0", "-n", "30", "Once upon a time"}, 0, storiesGreedy, ""},
			{[]string{"version"}, 0, "llamago dev\n", ""},
			{[]string{"run", "-m", "/nonexistent/model.gguf", "hi"}, 1, "", "/nonexistent/model.gguf"},
			{[]string{"run", "-m", modelPath(t, "ollama-test-truncated.gguf"), "hi"}, 1, "", "ollama-test-truncated.gguf"},
			{[]string{"run", "-m", stories, "-fa", "sometimes", "hi"}, 2, "", "--flash-attn"},
			{[]string{"frobnicate"}, 2, "", "unknown command"},
		}
		for _, tt := range tests {
			cmd := exec.Command(bin, tt.args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("%q: %v", tt.args, err)
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.wantCode {
				t.Errorf("%q: exit %d, want %d (stderr %q)", tt.args, code, tt.wantCode, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.wantStdout) {
				t.Errorf("%q: stdout %q, want prefix %q", tt.args, stdout.String(), tt.wantStdout)
			}
			if tt.wantCode == 0 {
				if stderr.String() != "" {
					t.Errorf("%q: stderr %q", tt.args, stderr.String())
				}
				continue
			}
			oneLine(t, stderr.String())
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("%q: stderr %q, want it to contain %q", tt.args, stderr.String(), tt.wantStderr)
			}
		}
	})

	t.Run("grammar errors", func(t *testing.T) {
		// llama.cpp's grammar parser prints its errors to stderr; the
		// binding makes them the error instead, so stderr holds one line.
		if llamaSystem {
			t.Skip("an installed llama.cpp prints grammar errors itself")
		}
		for grammar, want := range map[string]string{
			"root ::= [":         "invalid grammar: unexpected end of input",
			`root ::= "a" other`: "invalid grammar: undefined rule other",
			`root ::= root "a"`:  "invalid grammar: left recursion",
		} {
			cmd := exec.Command(bin, "run", "-m", stories, "--grammar", grammar, "hi")
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != exitError {
				t.Errorf("%q: %v, want exit %d", grammar, err, exitError)
			}
			oneLine(t, stderr.String())
			if !strings.Contains(stderr.String(), want) || stdout.String() != "" {
				t.Errorf("%q: stderr %q, stdout %q; want %q", grammar, stderr.String(), stdout.String(), want)
			}
		}
	})

	t.Run("SIGINT", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("a process cannot be sent SIGINT on Windows")
		}
		cmd := exec.Command(bin, "run", "-m", stories, "--temp", "0", "-n", "-1", "-c", "2048", "--ignore-eos", "Once upon a time")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(pipe)
		if _, err := r.Peek(1); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no output: %v (stderr %q)", err, stderr.String())
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		var out []byte
		done := make(chan struct{})
		go func() {
			out, _ = io.ReadAll(r) // the peeked bytes too
			cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatal("still running 2 s after SIGINT")
		}
		t.Logf("exited %v after SIGINT with %d bytes of output", time.Since(sent), len(out))
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupt {
			t.Errorf("exit %d, want %d (stderr %q)", code, exitInterrupt, stderr.String())
		}
		text, nl := strings.CutSuffix(string(out), "\n")
		if !nl || text == "" || !(strings.HasPrefix(text, storiesGreedy) || strings.HasPrefix(storiesGreedy, text)) {
			t.Errorf("stdout %q, want the start of the greedy text and a newline", out)
		}
		if len(out) > 4000 {
			t.Errorf("stdout has %d bytes: generation did not stop early", len(out))
		}
		if stderr.String() != "" {
			t.Errorf("stderr %q", stderr.String())
		}
	})
}
