package llama

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Levels of llama.cpp's log messages as they reach slog. llama.cpp's INFO
// messages are diagnostic chatter (a load prints dozens of them), so they
// arrive at slog.LevelDebug; its DEBUG messages one step below that.
const (
	LevelTrace = slog.LevelDebug - 4 // llama.cpp/ggml DEBUG
	LevelInfo  = slog.LevelDebug     // llama.cpp/ggml INFO
)

var logger atomic.Pointer[slog.Logger]

// SetLogger routes the log messages of llama.cpp and ggml to l, one record
// per line with the attribute source=llama.cpp. A nil l discards them, which
// is the default. The hook is process-wide because llama.cpp's is.
//
// l's handler is called from inside llama.cpp: a panic in it is recovered
// there (unwinding through llama.cpp's frames would leave its state
// broken), and the next Load, NewContext, LoadAdapter or Quantize returns
// it as a *CallbackPanic.
func SetLogger(l *slog.Logger) {
	logger.Store(l)
}

// logLines joins llama.cpp's log fragments into whole lines: a message may
// arrive in pieces, the later ones at GGML_LOG_LEVEL_CONT.
var logLines struct {
	sync.Mutex
	level slog.Level
	buf   strings.Builder
}

func logLevel(level int) slog.Level {
	switch level {
	case 1: // GGML_LOG_LEVEL_DEBUG
		return LevelTrace
	case 3: // WARN
		return slog.LevelWarn
	case 4: // ERROR
		return slog.LevelError
	default: // INFO, NONE
		return LevelInfo
	}
}

// logText receives one fragment of a llama.cpp log message.
func logText(level int, text string) {
	l := logger.Load()
	logLines.Lock()
	defer logLines.Unlock()
	if level != 5 { // not GGML_LOG_LEVEL_CONT: a new message
		logLines.level = logLevel(level)
	}
	send := l != nil && enabled(l, logLines.level)
	capture := logLines.level >= slog.LevelError && captures.active.Load() > 0
	if !send && !capture {
		logLines.buf.Reset()
		return
	}
	logLines.buf.WriteString(text)
	s := logLines.buf.String()
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimRight(s[:i], "\r "); line != "" {
			if capture {
				captures.add(line)
			}
			if send {
				logLine(l, logLines.level, line)
			}
		}
		s = s[i+1:]
	}
	logLines.buf.Reset()
	logLines.buf.WriteString(s)
}

// enabled is l.Enabled, with a panic of the handler recovered.
func enabled(l *slog.Logger, level slog.Level) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			captures.panicked(&CallbackPanic{Callback: "log", Value: r})
			ok = false
		}
	}()
	return l.Enabled(context.Background(), level)
}

// logLine logs one line, with a panic of the handler recovered.
func logLine(l *slog.Logger, level slog.Level, line string) {
	defer func() {
		if r := recover(); r != nil {
			captures.panicked(&CallbackPanic{Callback: "log", Value: r})
		}
	}()
	l.Log(context.Background(), level, line, slog.String("source", "llama.cpp"))
}

// captures collects llama.cpp's error lines while a call that can fail with
// only a log line for its reason runs (Load, NewContext, ...), for its
// error, and the panics of the log handler. Calls in other goroutines at
// the same time see each other's lines.
var captures captureSet

type captureSet struct {
	active atomic.Int32
	mu     sync.Mutex
	list   map[*logCapture]struct{}
	panic  *CallbackPanic // of the log handler while no call was capturing
}

// logCapture is what one call collects.
type logCapture struct {
	lines []string
	panic *CallbackPanic
}

// Bounds on what a capture keeps.
const (
	maxCaptureLines = 8
	maxCaptureLine  = 512
)

// add gives an error line to every capture.
func (cs *captureSet) add(line string) {
	if len(line) > maxCaptureLine {
		line = line[:maxCaptureLine] + "..."
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for c := range cs.list {
		if len(c.lines) < maxCaptureLines {
			c.lines = append(c.lines, line)
		}
	}
}

// panicked records a panic of the log handler for every capture, or for
// the next one if there is none.
func (cs *captureSet) panicked(p *CallbackPanic) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.list) == 0 {
		if cs.panic == nil {
			cs.panic = p
		}
		return
	}
	for c := range cs.list {
		if c.panic == nil {
			c.panic = p
		}
	}
}

// startCapture begins collecting; stop ends it.
func startCapture() *logCapture {
	c := &logCapture{}
	captures.mu.Lock()
	if captures.list == nil {
		captures.list = map[*logCapture]struct{}{}
	}
	captures.list[c] = struct{}{}
	c.panic, captures.panic = captures.panic, nil
	captures.mu.Unlock()
	captures.active.Add(1)
	return c
}

func (c *logCapture) stop() {
	captures.active.Add(-1)
	captures.mu.Lock()
	delete(captures.list, c)
	captures.mu.Unlock()
}

// reason is the collected error lines, without llama.cpp's function-name
// prefixes and the generic lines that close a failure, or "" if there are
// none.
func (c *logCapture) reason() string {
	captures.mu.Lock()
	defer captures.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		// "llama_model_load: error loading model: missing tensor 'x'"
		for {
			name, rest, ok := strings.Cut(l, ": ")
			if !ok || name == "" || strings.ContainsAny(name, " '\"") {
				break
			}
			l = rest
		}
		if l == "failed to load model" || l == "failed to initialize the context" && len(out) > 0 {
			continue
		}
		// A heading whose detail is on the next lines.
		if l = strings.TrimSpace(strings.TrimPrefix(l, "failed to quantize:")); l == "" {
			continue
		}
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// err is the log handler's panic collected, if any.
func (c *logCapture) err() error {
	captures.mu.Lock()
	defer captures.mu.Unlock()
	if c.panic != nil {
		return c.panic
	}
	return nil
}

// CallbackPanic is a panic of a function of the caller's that llama.cpp
// called (a WithProgress function, or SetLogger's handler), recovered
// where llama.cpp called it and returned as an error.
type CallbackPanic struct {
	Callback string // "progress" or "log"
	Value    any    // what was passed to panic
}

func (e *CallbackPanic) Error() string {
	return fmt.Sprintf("llama: the %s callback panicked: %v", e.Callback, e.Value)
}
