//go:build !windows

package clock

import "time"

type reading = time.Time

func now() reading { return time.Now() }

func sub(t, u reading) time.Duration { return t.Sub(u) }
