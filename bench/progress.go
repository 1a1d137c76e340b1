package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress reports how far a run has got on a terminal: one line,
// rewritten in place. On a writer that is not a terminal, each update is a
// line of its own (or nothing, if the Progress is disabled).
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	start time.Time
	shown bool
}

// NewProgress reports to w, a terminal if tty. A nil w disables it.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, start: time.Now()}
}

// Update shows the line, prefixed with the elapsed time.
func (p *Progress) Update(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start).Round(time.Second)
	line := fmt.Sprintf("[%s] %s", el, fmt.Sprintf(format, args...))
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, line)
}

// Clear erases the line from a terminal, before other output is written
// to it.
func (p *Progress) Clear() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.shown {
		io.WriteString(p.w, "\r\x1b[K")
		p.shown = false
	}
}
