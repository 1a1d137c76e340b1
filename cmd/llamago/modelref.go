package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/llamago/llamago/models"
)

// modelEnv is what the commands that find models take from the root
// command: where download progress goes and whether downloads are allowed.
// The root command's PersistentPreRunE puts it in the command's context
// (see withModelEnv), so loadModel keeps its signature.
type modelEnv struct {
	ErrOut  io.Writer // progress of downloads; nil: none
	Offline bool      // --offline: never download
	// TTY, if set, draws a progress bar on ErrOut; otherwise progress is
	// a plain line per 10%. newModelEnv sets it when ErrOut is a terminal.
	TTY bool
}

type modelEnvKey struct{}

// newModelEnv returns the environment of a command that writes progress to
// errOut.
func newModelEnv(errOut io.Writer, offline bool) modelEnv {
	return modelEnv{ErrOut: errOut, Offline: offline, TTY: isTerminal(errOut)}
}

// withModelEnv returns ctx carrying env.
func withModelEnv(ctx context.Context, env modelEnv) context.Context {
	return context.WithValue(ctx, modelEnvKey{}, env)
}

// modelEnvFrom returns the environment in ctx: without one, no progress
// and downloads allowed.
func modelEnvFrom(ctx context.Context) modelEnv {
	env, _ := ctx.Value(modelEnvKey{}).(modelEnv)
	if env.ErrOut == nil {
		env.ErrOut = io.Discard
	}
	return env
}

// store returns the model store: directories, endpoint and token from the
// environment (LLAMAGO_MODELS, HF_ENDPOINT, HF_TOKEN).
func (e modelEnv) store() *models.Store {
	return &models.Store{Offline: e.Offline, Retries: 3}
}

// resolveModel returns the local file of the model reference ref. A path
// that exists is used as is (a directory too: loading it gives the clearer
// error). Otherwise the store resolves it and, if the reference names a
// model that can be downloaded, pulls it with a progress display on the
// environment's ErrOut, unless offline. A missing model gives the store's
// one-line error, which says what was searched and how to get it.
func resolveModel(ctx context.Context, ref string) (string, error) {
	return findModel(ctx, ref, true)
}

// findModel is resolveModel; without pull it never downloads.
func findModel(ctx context.Context, ref string, pull bool) (string, error) {
	if ref == "" {
		return "", errors.New("empty model reference")
	}
	if _, err := os.Stat(ref); err == nil {
		return ref, nil
	}
	env := modelEnvFrom(ctx)
	s := env.store()
	p, err := s.Resolve(ref)
	if err == nil {
		return p, nil
	}
	var nf *models.NotFoundError
	if !pull || !errors.As(err, &nf) || nf.PullRef == "" {
		return "", err
	}
	return pullModel(ctx, s, nf.PullRef, env)
}

// pullModel pulls ref into the store s, showing progress as env says.
func pullModel(ctx context.Context, s *models.Store, ref string, env modelEnv) (string, error) {
	root := ""
	if dirs, err := s.SearchDirs(); err == nil && len(dirs) > 0 {
		root = dirs[0]
	}
	pr := &pullProgress{w: env.ErrOut, tty: env.TTY, root: root}
	p, err := s.Pull(ctx, ref, &models.PullOptions{Progress: pr.update})
	pr.end(err)
	return p, err
}

// pullProgress shows the progress of a download: a progress bar with the
// size, speed and time left on a terminal, else a line at every 10%.
type pullProgress struct {
	w    io.Writer
	tty  bool
	root string // the store directory, to shorten file names

	file   string // the file being shown, "" before the first
	cur    models.Progress
	total  int64 // its size, or -1
	base   int64 // the bytes already there when this display started
	last   int64 // the bytes done at the last report
	step   int   // plain mode: the last 10% step printed
	start  time.Time
	bar    *progressbar.ProgressBar
	closed bool // the bar is finished
}

// update is the models.PullOptions Progress callback.
func (p *pullProgress) update(pr models.Progress) {
	if pr.File != p.file || pr.Total != p.total || pr.Done < p.last {
		// A new file, or a new attempt that started over.
		p.begin(pr)
	}
	p.last, p.cur = pr.Done, pr
	if p.tty {
		if p.bar != nil && !p.closed {
			_ = p.bar.Set64(pr.Done - p.base)
			if p.total >= 0 && pr.Done >= p.total {
				p.closed = true // the bar finishes itself at its maximum
			}
		}
		return
	}
	if p.total <= 0 {
		return
	}
	if step := int(pr.Done * 10 / p.total); step > p.step {
		p.step = step
		fmt.Fprintf(p.w, "pulling %s: %d%% (%s of %s)\n", p.name(pr), step*10, humanBytes(pr.Done), humanBytes(p.total))
	}
}

// begin starts showing the download of pr.File.
func (p *pullProgress) begin(pr models.Progress) {
	p.finishBar()
	p.file, p.total, p.base, p.last, p.start = pr.File, pr.Total, pr.Done, pr.Done, time.Now()
	p.step = 0
	if p.total > 0 {
		// Resuming: lines from the next 10% on, and always the 100% line.
		p.step = min(int(pr.Done*10/p.total), 9)
	}
	size := "size unknown"
	if p.total >= 0 {
		size = humanBytes(p.total)
	}
	if pr.Done > 0 {
		size += ", resuming at " + humanBytes(pr.Done)
	}
	if !p.tty {
		fmt.Fprintf(p.w, "pulling %s (%s)\n", p.name(pr), size)
		return
	}
	max := int64(-1)
	if p.total >= 0 {
		max = p.total - p.base
	}
	if max == 0 {
		return // nothing left to download
	}
	desc := "pulling " + p.name(pr)
	if pr.Done > 0 {
		desc += " (resuming at " + humanBytes(pr.Done) + ")"
	}
	w := p.w
	p.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionFullWidth(),
		progressbar.OptionThrottle(100*time.Millisecond),
		// No goroutine redrawing a spinner for an unknown size: the
		// bar is redrawn at each report.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSetRenderBlankState(true),
	)
	p.closed = false
}

// name is how progress names the file of pr: its path in the store, and
// the part of a split model.
func (p *pullProgress) name(pr models.Progress) string {
	name := pr.File
	if p.root != "" {
		if rel, err := filepath.Rel(p.root, pr.File); err == nil && filepath.IsLocal(rel) {
			name = filepath.ToSlash(rel)
		}
	}
	if pr.Parts > 1 {
		name = fmt.Sprintf("%s [part %d of %d]", name, pr.Part, pr.Parts)
	}
	return name
}

// finishBar ends the current bar, if any, leaving its last state on its line.
func (p *pullProgress) finishBar() {
	if p.bar != nil && !p.closed {
		_ = p.bar.Exit() // prints the newline
	}
	p.bar, p.closed = nil, false
}

// end is called when the pull returns err.
func (p *pullProgress) end(err error) {
	p.finishBar()
	if err == nil && !p.tty && p.file != "" && p.total < 0 {
		fmt.Fprintf(p.w, "pulling %s: done (%s in %s)\n", p.name(p.cur), humanBytes(p.last), time.Since(p.start).Round(time.Millisecond))
	}
}

// humanBytes formats a byte count with binary units, as llama.cpp does:
// "512 B", "1.13 MiB", "4.07 GiB".
func humanBytes[T int64 | uint64 | int](n T) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", int64(n))
	}
	v := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := -1
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f %s", v, units[i])
	case v < 100:
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}
