package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

func TestChatFlags(t *testing.T) {
	tmplFile := filepath.Join(t.TempDir(), "chatml.jinja")
	if err := os.WriteFile(tmplFile, []byte(chatmlJinja), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		want    func(o *chatOptions) // changes to the defaults
		wantErr string               // a usage error containing this
	}{
		{name: "defaults", args: []string{"-m", "m.gguf"}, want: func(o *chatOptions) {}},
		{name: "chat flags", args: []string{
			"-m", "m.gguf", "--system", "Be brief.", "--chat-template", "llama3", "--show-thinking",
			"-f", "msgs.txt", "--timings", "--no-escape", "--no-context-shift",
		}, want: func(o *chatOptions) {
			o.System, o.ChatTemplate, o.builtin, o.ShowThinking = "Be brief.", "llama3", "llama3", true
			o.File, o.Timings, o.Gen.NoEscape, o.NoContextShift = "msgs.txt", true, true, true
		}},
		{name: "run's flags", args: []string{
			"--model=m.gguf", "-n", "20", "-c", "512", "-t", "1", "-ngl", "0", "-fa", "off", "-ctk", "f32",
			"--temp", "0", "--top-k", "5", "--seed", "3", "--stop", "x", "--ignore-eos", "--grammar", `root ::= "a"`,
		}, want: func(o *chatOptions) {
			g := &o.Gen
			g.NPredict, g.CtxSize, g.Threads, g.ThreadsBatch, g.GPULayers = 20, 512, 1, 1, 0
			g.FlashAttn, g.flashAttn, g.CacheTypeK, g.cacheK = "off", llama.FlashAttentionOff, "f32", llama.CacheF32
			g.Temp, g.TopK, g.Seed, g.seed, g.Stop, g.IgnoreEOS, g.Grammar = 0, 5, 3, 3, []string{"x"}, true, `root ::= "a"`
		}},
		{name: "template file", args: []string{"-m", "m.gguf", "--chat-template", tmplFile}, want: func(o *chatOptions) {
			o.ChatTemplate = tmplFile
		}},

		{name: "no model", args: nil, wantErr: "--model is required"},
		{name: "unknown template", args: []string{"-m", "m", "--chat-template", "nope"}, wantErr: `--chat-template "nope" is neither a built-in template (`},
		{name: "template directory", args: []string{"-m", "m", "--chat-template", t.TempDir()}, wantErr: "is neither a built-in template"},
		{name: "argument", args: []string{"-m", "m", "hello"}, wantErr: `unexpected argument "hello"`},
		{name: "bad temp", args: []string{"-m", "m", "--temp", "-1"}, wantErr: "--temp"},
		{name: "run-only flag", args: []string{"-m", "m", "--json"}, wantErr: "unknown flag: --json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *chatOptions
			cmd := newChatCmd(&iostreams{}, func(o *chatOptions) error { got = o; return nil })
			code, err := parseFlags(t, cmd, append([]string{"chat"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || code != exitUsage {
					t.Fatalf("error = %v (exit %d), want a usage error containing %q", err, code, tt.wantErr)
				}
				if got != nil {
					t.Error("runF was called despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := chatOptions{Gen: defaultRunOptions()}
			want.Gen.Model = "m.gguf"
			tt.want(&want)
			got.IO = nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("options\n got %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestMultiline(t *testing.T) {
	type msg struct {
		text  string
		block bool
	}
	tests := []struct {
		name  string
		lines []string
		want  []msg
	}{
		{"one a line", []string{"a", "b"}, []msg{{"a", false}, {"b", false}}},
		{"continuation", []string{`a\`, `b\`, "c", "d"}, []msg{{"a\nb\nc", false}, {"d", false}}},
		{"block", []string{`"""`, "a", "", `b"""`, "c"}, []msg{{"a\n\nb", true}, {"c", false}}},
		{"block with text on the marks", []string{`"""a`, `b`, `"""`}, []msg{{"a\nb", true}}},
		{"one-line block", []string{`"""/help"""`}, []msg{{"/help", true}}},
		{"backslash inside a block", []string{`"""`, `a\`, `"""`}, []msg{{`a\`, true}}},
		{"marks inside a continuation", []string{`a\`, `"""b`}, []msg{{"a\n\"\"\"b", false}}},
		{"command", []string{"/system be\\", "brief"}, []msg{{"/system be\nbrief", false}}},
		{"unterminated block", []string{`"""`, "a"}, []msg{{"a", true}}},
		{"unterminated continuation", []string{`a\`}, []msg{{"a", false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m multiline
			var got []msg
			for _, line := range tt.lines {
				if text, block, ok := m.add(line); ok {
					got = append(got, msg{text, block})
				}
			}
			if text, block, ok := m.flush(); ok {
				got = append(got, msg{text, block})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// chatmlJinja is the usual Jinja source of the ChatML template, which
// renders as llama.cpp's built-in chatml.
const chatmlJinja = `{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// chatArgs are greedy, short replies from stories260K.
func chatArgs(t *testing.T, extra ...string) []string {
	return append([]string{"chat", "-m", modelPath(t, "stories260K.gguf"), "--chat-template", "chatml",
		"--temp", "0", "-n", "20", "-c", "1024", "-t", "1"}, extra...)
}

// chatOK runs chat through a pipe and fails the test unless it succeeds.
func chatOK(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := cli(t, stdin, args...)
	if code != exitOK {
		t.Fatalf("chat %q with input %q: exit %d, stderr %q", args, stdin, code, stderr)
	}
	return stdout, stderr
}

// timingsRE matches the --timings lines of one reply.
var timingsRE = regexp.MustCompile(`prompt: +(\d+) tokens evaluated \((\d+) cached\), [0-9.]+ ms, [0-9.]+ tok/s\n` +
	`generation: +(\d+) tokens, time to first token [0-9.]+ ms, [0-9.]+ tok/s\n` +
	`stop: +(\S+)\n`)

type replyTimings struct{ evaluated, cached, generated int }

func parseTimings(t *testing.T, stderr string) []replyTimings {
	t.Helper()
	var out []replyTimings
	rest := stderr
	for _, m := range timingsRE.FindAllStringSubmatch(stderr, -1) {
		n := func(s string) int { i, _ := strconv.Atoi(s); return i }
		out = append(out, replyTimings{n(m[1]), n(m[2]), n(m[3])})
		rest = strings.Replace(rest, m[0], "", 1)
	}
	if rest != "" {
		t.Errorf("stderr has more than timings: %q", rest)
	}
	return out
}

// TestReplyWriter checks how a streamed reply is closed: the prompt that
// follows must start its own line.
func TestReplyWriter(t *testing.T) {
	tests := []struct {
		name           string
		chunks         []string
		failed, echoed bool
		want           string
	}{
		{name: "text", chunks: []string{"Hi", " there"}, want: "Hi there\n"},
		{name: "ends a line", chunks: []string{"Hi\n"}, want: "Hi\n"},
		{name: "empty reply", want: "\n"},
		{name: "failed before text", failed: true, want: ""},
		{name: "failed mid-line", chunks: []string{"Hi"}, failed: true, want: "Hi\n"},
		// ^C echoed by the terminal after the reply's newline, or before
		// any text, stands on the prompt's line unless the line is ended.
		{name: "interrupted after a newline", chunks: []string{"Hi\n"}, failed: true, echoed: true, want: "Hi\n\n"},
		{name: "interrupted before text", failed: true, echoed: true, want: "\n"},
		{name: "interrupted mid-line", chunks: []string{"Hi"}, failed: true, echoed: true, want: "Hi\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			w := &replyWriter{w: &b}
			for _, c := range tt.chunks {
				if err := w.write(c, false); err != nil {
					t.Fatal(err)
				}
			}
			w.end(tt.failed, tt.echoed)
			if b.String() != tt.want {
				t.Errorf("wrote %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestChatPipe(t *testing.T) {
	hello, _ := chatOK(t, "Hello there\n", chatArgs(t)...)
	two, stderr := chatOK(t, "Hello there\nTell me a story\n", chatArgs(t)...)
	if stderr != "" {
		t.Errorf("stderr = %q", stderr)
	}
	// The second reply follows the first, in the same conversation.
	story, ok := strings.CutPrefix(two, hello)
	if !ok || strings.TrimSpace(hello) == "" || strings.TrimSpace(story) == "" || !strings.HasSuffix(hello, "\n") || !strings.HasSuffix(story, "\n") {
		t.Fatalf("replies %q, want %q then a second reply, each ending with a newline", two, hello)
	}
	t.Logf("replies: %q, %q", hello, story)

	t.Run("deterministic", func(t *testing.T) {
		if again, _ := chatOK(t, "Hello there\nTell me a story\n", chatArgs(t)...); again != two {
			t.Errorf("second run gave %q, first %q", again, two)
		}
	})

	t.Run("timings", func(t *testing.T) {
		stdout, stderr := chatOK(t, "Hello there\nTell me a story\n", chatArgs(t, "--timings")...)
		if stdout != two {
			t.Errorf("stdout = %q, want %q", stdout, two)
		}
		tm := parseTimings(t, stderr)
		if len(tm) != 2 || strings.Count(stderr, "stop:       max_tokens\n") != 2 {
			t.Fatalf("stderr %q, want the timings of two replies", stderr)
		}
		if tm[0].cached != 0 || tm[0].evaluated == 0 || tm[0].generated != 20 || tm[1].generated != 20 {
			t.Errorf("timings %+v", tm)
		}
		// The second turn reuses the first from the KV cache.
		if tm[1].cached < tm[0].evaluated {
			t.Errorf("second turn: %+v after %+v, want the first one cached", tm[1], tm[0])
		}
	})

	t.Run("file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "messages.txt")
		if err := os.WriteFile(file, []byte("Hello there\nTell me a story"), 0o644); err != nil {
			t.Fatal(err)
		}
		if stdout, _ := chatOK(t, "ignored\n", chatArgs(t, "--file", file)...); stdout != two {
			t.Errorf("stdout = %q, want %q", stdout, two)
		}
		if stdout, _ := chatOK(t, "Hello there\r\nTell me a story\r\n", chatArgs(t, "-f", "-")...); stdout != two {
			t.Errorf("stdin with CRLF: stdout = %q, want %q", stdout, two)
		}
	})

	t.Run("system", func(t *testing.T) {
		_, plain := chatOK(t, "Hello there\n", chatArgs(t, "--timings")...)
		cmdOut, cmdErr := chatOK(t, "/system You are a cat.\nHello there\n", chatArgs(t, "--timings")...)
		flagOut, flagErr := chatOK(t, "Hello there\n", chatArgs(t, "--timings", "--system", "You are a cat.")...)
		if cmdOut != flagOut || cmdErr == "" || parseTimings(t, cmdErr)[0] != parseTimings(t, flagErr)[0] {
			t.Errorf("/system gave %q (%q), --system %q (%q)", cmdOut, cmdErr, flagOut, flagErr)
		}
		if p, s := parseTimings(t, plain)[0], parseTimings(t, cmdErr)[0]; s.evaluated <= p.evaluated {
			t.Errorf("prompt with the system prompt %+v, without %+v: want it longer", s, p)
		}
		if out, _ := chatOK(t, "/system\n/system Be a cat.\n/system\n", chatArgs(t)...); out != "Be a cat.\n" {
			t.Errorf("/system without text printed %q, want the system prompt only once set", out)
		}
		if out, _ := chatOK(t, "/system\n", chatArgs(t, "--system", `A\tB`)...); out != "A\tB\n" {
			t.Errorf("--system escapes: %q", out)
		}
	})

	t.Run("clear", func(t *testing.T) {
		stdout, _ := chatOK(t, "Hello there\n/clear\nHello there\n", chatArgs(t)...)
		if stdout != hello+hello {
			t.Errorf("stdout = %q, want the first reply twice (%q)", stdout, hello)
		}
	})

	t.Run("save and load", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "chat.session")
		stdout, _ := chatOK(t, "Hello there\n/save "+file+"\nTell me a story\n", chatArgs(t)...)
		if stdout != two {
			t.Errorf("stdout = %q, want %q", stdout, two)
		}
		if _, err := os.Stat(file); err != nil {
			t.Fatal(err)
		}
		stdout, stderr := chatOK(t, "/load "+file+"\nTell me a story\n", chatArgs(t, "--timings")...)
		if stdout != story {
			t.Errorf("after /load: %q, want %q", stdout, story)
		}
		// The KV cache was restored with the conversation.
		if tm := parseTimings(t, stderr); len(tm) != 1 || tm[0].cached == 0 {
			t.Errorf("after /load: timings %q, want cached tokens", stderr)
		}
		stdout, _ = chatOK(t, "Hello there\n/save "+file+"\n/clear\n/load "+file+"\nTell me a story\n", chatArgs(t)...)
		if stdout != two {
			t.Errorf("/save, /clear, /load: %q, want %q", stdout, two)
		}
	})

	t.Run("multi-line", func(t *testing.T) {
		var outs []string
		for _, in := range []string{"Hello\\\nthere\n", "\"\"\"\nHello\nthere\n\"\"\"\n", "\"\"\"Hello\nthere\"\"\"\n"} {
			stdout, _ := chatOK(t, in, chatArgs(t, "--timings")...)
			outs = append(outs, stdout)
		}
		if outs[0] == "" || outs[1] != outs[0] || outs[2] != outs[0] {
			t.Errorf("replies to the same two-line message differ: %q", outs)
		}
	})

	t.Run("commands", func(t *testing.T) {
		stdout, _ := chatOK(t, "/stats\nHello there\n/stats\n/help\n\n/exit\nTell me a story\n", chatArgs(t)...)
		want := regexp.MustCompile(`^No reply yet\.\n` + regexp.QuoteMeta(hello) +
			`Last reply:\n  prompt: .*\n  generation: +20 tokens, .*\n  stop: +max_tokens\n` +
			`Session: 1 reply, 2 messages in the conversation\n  prompt: .*\n  generation: +20 tokens, .*\n` +
			`Commands:\n(.*\n)+Ctrl-C stops an answer; Ctrl-D quits\.\n$`)
		if !want.MatchString(stdout) {
			t.Errorf("stdout = %q, want /stats, the reply, /stats, /help, then nothing after /exit", stdout)
		}
		if stdout, _ := chatOK(t, "//help\n", chatArgs(t)...); stdout == "" || strings.Contains(stdout, "Commands:") {
			t.Errorf("//help: %q, want a reply", stdout)
		}
	})

	t.Run("template file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "chatml.jinja")
		if err := os.WriteFile(file, []byte(chatmlJinja), 0o644); err != nil {
			t.Fatal(err)
		}
		args := chatArgs(t)
		args[4] = file // --chat-template
		if stdout, _ := chatOK(t, "Hello there\nTell me a story\n", args...); stdout != two {
			t.Errorf("stdout = %q, want %q as with the built-in chatml", stdout, two)
		}
	})

	t.Run("model without a template", func(t *testing.T) {
		args := append(chatArgs(t)[:3], chatArgs(t)[5:]...) // no --chat-template
		stdout, stderr := chatOK(t, "Hello there\nTell me a story\n", args...)
		if stdout != two {
			t.Errorf("stdout = %q, want %q as with chatml", stdout, two)
		}
		if want := "llamago: warning: the model has no chat template; using chatml (see --chat-template)\n"; stderr != want {
			t.Errorf("stderr = %q, want %q", stderr, want)
		}
	})

	t.Run("thinking", func(t *testing.T) {
		// A template whose generation prompt opens the thinking: the whole
		// reply is thinking, as stories260K never closes it.
		file := filepath.Join(t.TempDir(), "think.jinja")
		src := strings.Replace(chatmlJinja, `'<|im_start|>assistant\n'`, `'<|im_start|>assistant\n<think>\n'`, 1)
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		args := chatArgs(t)
		args[4] = file
		hidden, _ := chatOK(t, "Hello there\n", args...)
		shown, _ := chatOK(t, "Hello there\n", append(args, "--show-thinking")...)
		if hidden != "\n" || len(strings.TrimSpace(shown)) < 10 || strings.Contains(shown, "\x1b") {
			t.Errorf("hidden thinking %q, shown %q", hidden, shown)
		}
	})
}

func TestChatErrors(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	badTmpl := filepath.Join(dir, "bad.jinja")
	if err := os.WriteFile(badTmpl, []byte("{% for %}"), 0o644); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("Once upon a time ", 80)
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		want       string // in the error line
		wantStdout bool   // a reply before the error
	}{
		{"unknown template", chatArgs(t, "--chat-template", "nope"), "Hi\n", exitUsage, `--chat-template "nope" is neither a built-in template (`, false},
		{"template that does not parse", chatArgs(t, "--chat-template", badTmpl), "Hi\n", exitError, "--chat-template " + badTmpl + ": chat: template syntax error", false},
		{"missing model", []string{"chat", "-m", missing}, "Hi\n", exitError, missing, false},
		{"missing file", chatArgs(t, "--file", missing), "", exitError, missing, false},
		{"unknown command", chatArgs(t), "Hello there\n/frobnicate\nHi\n", exitError, "unknown command /frobnicate (see /help)", true},
		{"save without a file", chatArgs(t), "/save\n", exitError, "/save needs a file name", false},
		{"load of a missing file", chatArgs(t), "/load " + missing + "\n", exitError, missing, false},
		{"load of a bad file", chatArgs(t), "/load " + badTmpl + "\n", exitError, "not a valid session file", false},
		{"context full", chatArgs(t, "-c", "64", "--no-context-shift"), long + "\n", exitError, "the context has 256 (see --ctx-size, /clear)", false},
		{"usage", []string{"chat", "-m", stories, "extra"}, "", exitUsage, `unexpected argument "extra" (see 'llamago chat --help')`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			oneLine(t, stderr)
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
			if (stdout != "") != tt.wantStdout {
				t.Errorf("stdout = %q", stdout)
			}
		})
	}
}

func TestChatCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelWriter{cancel: cancel}
	var errOut syncBuffer
	code := execute(ctx, chatArgs(t, "-n", "-1", "--ignore-eos"),
		&iostreams{In: strings.NewReader("Tell me a story\nHello there\n"), Out: out, ErrOut: &errOut})
	if code != exitInterrupt {
		t.Errorf("exit %d, want %d", code, exitInterrupt)
	}
	if s := out.String(); !strings.HasSuffix(s, "\n") || len(s) > 200 {
		t.Errorf("stdout = %q, want a little text and a newline", s)
	}
	if errOut.String() != "" {
		t.Errorf("stderr = %q", errOut.String())
	}
}
