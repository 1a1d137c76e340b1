//go:build unix

package main

import (
	"context"
	"syscall"
	"testing"
	"time"
)

func TestInterrupts(t *testing.T) {
	if _, ok := catchInterrupt(context.Background(), func() {}); ok {
		t.Error("catchInterrupt took Ctrl-C over outside mainRun")
	}

	ctx, stop := notifyInterrupt(context.Background())
	defer stop()
	caught := make(chan struct{}, 1)
	release, ok := catchInterrupt(ctx, func() { caught <- struct{}{} })
	if !ok {
		t.Fatal("catchInterrupt refused")
	}
	// Taken over: SIGINT calls the handler, again and again, and leaves
	// the context alone.
	for range 2 {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-caught:
		case <-time.After(5 * time.Second):
			t.Fatal("the handler did not run")
		}
	}
	if ctx.Err() != nil {
		t.Fatal("SIGINT cancelled the context while taken over")
	}
	// Released: the next SIGINT cancels the context.
	release()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGINT did not cancel the context")
	}
	if _, ok := catchInterrupt(ctx, func() {}); ok {
		t.Error("catchInterrupt took Ctrl-C over after it cancelled the context")
	}
}
