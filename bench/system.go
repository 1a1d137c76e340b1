package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bandwidth is a memory bandwidth measurement.
type Bandwidth struct {
	Threads     int
	BufferBytes int
	// Read is the read bandwidth in bytes per second: every word of the
	// buffer summed, the buffer split between the threads, best of the
	// repetitions. Decoding a token reads every weight once, so this is
	// the rate that bounds generation.
	Read float64
	// Copy is the bandwidth of copy (memmove), bytes read plus bytes
	// written per second, best of the repetitions.
	Copy float64
}

// MeasureBandwidth measures the memory bandwidth over a buffer of size
// bytes (much larger than the caches: 1 GiB is a good size) with the
// given number of goroutines, each locked to its thread, best of reps
// passes.
func MeasureBandwidth(size, threads, reps int) Bandwidth {
	threads = max(threads, 1)
	reps = max(reps, 1)
	words := size / 8 / threads * threads
	src := make([]uint64, words)
	dst := make([]uint64, words)
	for i := range src {
		src[i] = uint64(i) // touch every page, so none is a shared zero page
	}
	copy(dst, src) // fault dst in too
	chunk := words / threads
	run := func(f func(part int)) time.Duration {
		var wg sync.WaitGroup
		start := make(chan struct{})
		ready := sync.WaitGroup{}
		var t0 time.Time
		ready.Add(threads)
		for p := range threads {
			wg.Go(func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				ready.Done()
				<-start
				f(p)
			})
		}
		ready.Wait()
		t0 = time.Now()
		close(start)
		wg.Wait()
		return time.Since(t0)
	}
	bw := Bandwidth{Threads: threads, BufferBytes: words * 8}
	sums := make([]uint64, threads*8) // one cache line apart
	for range reps {
		d := run(func(p int) { sums[p*8] += sum(src[p*chunk : (p+1)*chunk]) })
		bw.Read = max(bw.Read, float64(words*8)/d.Seconds())
		d = run(func(p int) { copy(dst[p*chunk:(p+1)*chunk], src[p*chunk:(p+1)*chunk]) })
		bw.Copy = max(bw.Copy, float64(2*words*8)/d.Seconds())
	}
	runtime.KeepAlive(sums)
	return bw
}

// sum adds the words with eight independent accumulators, enough loads in
// flight to keep the memory system busy.
func sum(s []uint64) uint64 {
	var a0, a1, a2, a3, a4, a5, a6, a7 uint64
	for len(s) >= 8 {
		a0 += s[0]
		a1 += s[1]
		a2 += s[2]
		a3 += s[3]
		a4 += s[4]
		a5 += s[5]
		a6 += s[6]
		a7 += s[7]
		s = s[8:]
	}
	for _, v := range s {
		a0 += v
	}
	return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
}

// PeakRSS is the process's peak resident set size in bytes since it
// started or since the last ResetPeakRSS: VmHWM on Linux, getrusage's
// maxrss on other Unix systems, the peak working set on Windows. 0 where
// none is available.
func PeakRSS() uint64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		s := bufio.NewScanner(bytes.NewReader(b))
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
				f := strings.Fields(v)
				if len(f) == 2 && f[1] == "kB" {
					if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
						return n << 10
					}
				}
			}
		}
	}
	return maxRSS()
}

// ResetPeakRSS resets the peak resident set size to the current one
// (Linux 4.0 and later: "5" written to /proc/self/clear_refs), so that
// PeakRSS measures from here. It reports whether it could.
func ResetPeakRSS() bool {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Write([]byte("5"))
	return err == nil
}
