package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
)

// interrupts routes Ctrl-C (SIGINT) for mainRun. By default the first one
// cancels the command's context, so a load or a generation stops cleanly,
// and restores the default action, so a second one kills the process: as
// signal.NotifyContext. A command that handles Ctrl-C itself (the
// interactive chat, where it stops an answer) takes it over with
// catchInterrupt for as long as it wants.
type interrupts struct {
	mu      sync.Mutex
	handler func() // set by catchInterrupt
}

type interruptsKey struct{}

// notifyInterrupt returns a context that the first SIGINT cancels unless
// a command has taken Ctrl-C over (see catchInterrupt), and the function
// that stops listening.
func notifyInterrupt(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	in := &interrupts{}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
			case <-done:
				return
			}
			in.mu.Lock()
			h := in.handler
			in.mu.Unlock()
			if h != nil {
				h()
				continue
			}
			cancel()
			signal.Stop(ch) // restore the default action for the next SIGINT
			return
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel()
		})
	}
	return context.WithValue(ctx, interruptsKey{}, in), stop
}

// catchInterrupt makes Ctrl-C call f, on another goroutine, instead of
// cancelling the command's context, until release is called. It reports
// false, and changes nothing, when ctx does not come from
// notifyInterrupt (a test calling execute) or Ctrl-C already cancelled it.
func catchInterrupt(ctx context.Context, f func()) (release func(), ok bool) {
	in, _ := ctx.Value(interruptsKey{}).(*interrupts)
	if in == nil || ctx.Err() != nil {
		return func() {}, false
	}
	in.mu.Lock()
	in.handler = f
	in.mu.Unlock()
	return func() {
		in.mu.Lock()
		in.handler = nil
		in.mu.Unlock()
	}, true
}
