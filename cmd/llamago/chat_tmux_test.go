//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tmuxPane drives a program in a tmux pane of its own server.
type tmuxPane struct {
	t       *testing.T
	tmux    string
	sock    string
	prompts int // prompts seen so far
}

// tmuxWait is generous: CI machines run these tests several times slower.
const tmuxWait = 30 * time.Second

// startTmux runs bin with args in a detached tmux session of 100x30
// characters, with a server of its own that the test ends.
func startTmux(t *testing.T, tmux, bin string, args ...string) *tmuxPane {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "tmux.conf")
	// Keep the pane when the program exits, to read its exit status.
	if err := os.WriteFile(conf, []byte("set -g remain-on-exit on\nset -g history-limit 20000\nset -g status off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &tmuxPane{t: t, tmux: tmux, sock: filepath.Join(dir, "sock")}
	t.Cleanup(func() { exec.Command(tmux, "-S", p.sock, "kill-server").Run() })
	p.run(append([]string{"-f", conf, "new-session", "-d", "-s", "chat", "-x", "100", "-y", "30", bin}, args...)...)
	return p
}

func (p *tmuxPane) run(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(p.tmux, append([]string{"-S", p.sock}, args...)...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// typeLine types text and Enter.
func (p *tmuxPane) typeLine(text string) {
	p.t.Helper()
	p.run("send-keys", "-t", "chat", "-l", text)
	p.run("send-keys", "-t", "chat", "Enter")
}

// screen is the pane's history and screen, wrapped lines joined, without
// trailing spaces and empty lines.
func (p *tmuxPane) screen() []string {
	p.t.Helper()
	lines := strings.Split(p.run("capture-pane", "-p", "-J", "-S", "-", "-t", "chat"), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// waitFor polls the pane until cond holds, at most tmuxWait.
func (p *tmuxPane) waitFor(what string, cond func(lines []string) bool) []string {
	p.t.Helper()
	deadline := time.Now().Add(tmuxWait)
	for {
		lines := p.screen()
		if cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited %v for %s; the pane shows:\n%s", tmuxWait, what, strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPrompt waits for the next empty prompt, at the end of the pane.
func (p *tmuxPane) waitPrompt() []string {
	p.t.Helper()
	p.prompts++
	return p.waitFor(fmt.Sprintf("prompt %d", p.prompts), func(lines []string) bool {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, ">>>") {
				n++
			}
		}
		return n >= p.prompts && len(lines) > 0 && lines[len(lines)-1] == ">>>"
	})
}

// after returns the lines after the last one that is exactly line.
func after(lines []string, line string) ([]string, bool) {
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i] == line {
			return lines[i+1:], true
		}
	}
	return nil, false
}

// waitOutput waits for text after the prompt line of a message.
func (p *tmuxPane) waitOutput(msg string) {
	p.t.Helper()
	p.waitFor("a reply to "+msg, func(lines []string) bool {
		rest, ok := after(lines, ">>> "+msg)
		return ok && len(strings.Join(rest, "")) >= 10
	})
}

// waitExit waits for the program to end and returns its exit status.
func (p *tmuxPane) waitExit() int {
	p.t.Helper()
	deadline := time.Now().Add(tmuxWait)
	for {
		out := strings.Fields(p.run("display-message", "-p", "-t", "chat", "#{pid} #{pane_dead} #{pane_dead_status}"))
		if len(out) == 3 && out[1] == "1" {
			code, _ := strconv.Atoi(out[2])
			return code
		}
		if len(out) == 2 && out[1] == "1" {
			// The pane is dead but has no status: now and then (one run
			// in five here) tmux 3.3a misses the SIGCHLD of the pane's
			// process and leaves it a zombie. Another SIGCHLD makes the
			// server reap it.
			if pid, err := strconv.Atoi(out[0]); err == nil {
				syscall.Kill(pid, syscall.SIGCHLD)
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("still running %v after quitting; the pane shows:\n%s", tmuxWait, strings.Join(p.screen(), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestChatTerminal drives the interactive chat on a terminal: a tmux pane.
func TestChatTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is not installed: this test drives the interactive chat through it (.ci/run installs it; apt-get install tmux)")
	}
	bin := buildLlamago(t)

	t.Run("replies and commands", func(t *testing.T) {
		hello, _ := chatOK(t, "Hello there\n", chatArgs(t)...)
		p := startTmux(t, tmux, bin, chatArgs(t)...)
		p.waitPrompt()

		p.typeLine("Hello there")
		lines := p.waitPrompt()
		reply, _ := after(lines, ">>> Hello there")
		want := strings.Split(strings.TrimRight(hello, "\n"), "\n")
		for i := range want {
			want[i] = strings.TrimRight(want[i], " ")
		}
		if got := reply[:len(reply)-1]; !reflect.DeepEqual(got, append(want, "")) {
			t.Errorf("reply on the terminal %q, want %q and an empty line, as through a pipe", got, want)
		}

		// Ctrl-C at an empty prompt: a hint.
		p.run("send-keys", "-t", "chat", "C-c")
		lines = p.waitPrompt()
		if l := lines[len(lines)-2]; l != "Use Ctrl-D or /exit to quit." {
			t.Errorf("after Ctrl-C at the prompt: %q", l)
		}
		// Ctrl-C with text typed: the line is dropped, without the hint.
		p.run("send-keys", "-t", "chat", "-l", "forget me")
		p.run("send-keys", "-t", "chat", "C-c")
		lines = p.waitPrompt()
		if l := lines[len(lines)-2]; l != ">>> forget me^C" {
			t.Errorf("after Ctrl-C on a typed line: %q", l)
		}

		// A message on two lines.
		p.typeLine(`Tell me\`)
		p.waitFor("the continuation prompt", func(lines []string) bool { return lines[len(lines)-1] == "..." })
		p.typeLine("a story")
		p.waitPrompt()
		p.typeLine("/stats")
		lines = p.waitPrompt()
		if rest, _ := after(lines, ">>> /stats"); len(rest) < 2 || rest[0] != "Last reply:" || !strings.Contains(strings.Join(rest, "\n"), "Session: 2 replies, 4 messages") {
			t.Errorf("/stats printed %q", rest)
		}
		p.run("send-keys", "-t", "chat", "Up")
		p.waitFor("the history", func(lines []string) bool { return lines[len(lines)-1] == ">>> /stats" })
		p.run("send-keys", "-t", "chat", "C-u")
		p.typeLine("/exit")
		if code := p.waitExit(); code != exitOK {
			t.Errorf("exit status %d after /exit", code)
		}
	})

	t.Run("Ctrl-C stops an answer", func(t *testing.T) {
		// Replies of 2000 tokens take seconds on one thread.
		p := startTmux(t, tmux, bin, chatArgs(t, "-n", "2000", "--ignore-eos", "-c", "4096")...)
		p.waitPrompt()
		p.typeLine("Tell me a story")
		p.waitOutput("Tell me a story")
		p.run("send-keys", "-t", "chat", "C-c")
		p.waitPrompt()
		// The stopped answer is not kept: no reply has finished.
		p.typeLine("/stats")
		lines := p.waitPrompt()
		if rest, _ := after(lines, ">>> /stats"); len(rest) != 2 || rest[0] != "No reply yet." {
			t.Errorf("/stats after Ctrl-C printed %q", rest)
		}
		// The next message is answered, and stopped again.
		p.typeLine("Once upon a time")
		p.waitOutput("Once upon a time")
		p.run("send-keys", "-t", "chat", "C-c")
		p.waitPrompt()
		p.run("send-keys", "-t", "chat", "C-d")
		if code := p.waitExit(); code != exitOK {
			t.Errorf("exit status %d after Ctrl-D", code)
		}
	})
}
