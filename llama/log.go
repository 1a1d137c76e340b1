package llama

import (
	"context"
	"log/slog"
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
	if l == nil || !l.Enabled(context.Background(), logLines.level) {
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
			l.Log(context.Background(), logLines.level, line, slog.String("source", "llama.cpp"))
		}
		s = s[i+1:]
	}
	logLines.buf.Reset()
	logLines.buf.WriteString(s)
}
