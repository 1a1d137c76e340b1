package bench

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// QuantResult is one quantization of a model in a speed-versus-quality
// report (`llamago quants`): its speed, llama-bench's pp and tg, and its
// quality, the KL divergence of its predictions from the base model's
// over a text.
type QuantResult struct {
	Model string `json:"model"` // file name
	Type  string `json:"type"`  // the model's description: architecture, size, file type
	Size  uint64 `json:"size"`  // bytes of the weights
	Base  bool   `json:"base"`  // the model the others are compared with

	PP, TG Result `json:"-"` // the speed tests, as `llamago bench` reports them
	// PPTS and TGTS are their mean tokens/s, with sample standard
	// deviations.
	PPTS float64 `json:"pp_ts"`
	PPSD float64 `json:"pp_stddev_ts"`
	TGTS float64 `json:"tg_ts"`
	TGSD float64 `json:"tg_stddev_ts"`

	Quality KLStats `json:"quality"`
}

// QuantsMarkdown writes the report as one markdown table, in the order
// given.
func QuantsMarkdown(w io.Writer, rs []QuantResult) error {
	if len(rs) == 0 {
		return fmt.Errorf("bench: no quantizations to report")
	}
	pp, tg := rs[0].PP.Test, rs[0].TG.Test
	fmt.Fprintf(w, "| model | size | %s t/s | %s t/s | PPL | PPL(Q)/PPL(base) | mean KLD | median KLD | 99%% KLD | 99.9%% KLD | same top |\n", pp, tg)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		q := r.Quality
		name := strings.TrimSuffix(r.Model, ".gguf")
		if r.Base {
			name += " (base)"
		}
		fmt.Fprintf(w, "| %s | %s | %.2f ± %.2f | %.2f ± %.2f | %.4f ± %.4f | %.4f ± %.4f | %.6f ± %.6f | %.6f | %.6f | %.6f | %.2f ± %.2f %% |\n",
			name, FormatBytes(r.Size), r.PPTS, r.PPSD, r.TGTS, r.TGSD, q.PPL, q.PPLUnc, q.Ratio, q.RatioUnc,
			q.KLD, q.KLDUnc, q.KLDMedian, q.KLD99, q.KLD999, 100*q.SameTop, 100*q.SameTopUnc)
	}
	return nil
}

// QuantsPlotFile draws the report to path, an .svg or .png file (see
// QuantsPlot).
func QuantsPlotFile(path string, rs []QuantResult) error {
	return plotFile(path, func(w io.Writer, format string) error { return QuantsPlot(w, format, rs) })
}

// QuantsPlot draws speed against quality for the quantizations of a
// model, each point labelled with its file: pp and tg tokens/s against
// mean KL divergence from the base, then mean KL divergence and top-1
// agreement against file size. format is svg or png.
func QuantsPlot(w io.Writer, format string, rs []QuantResult) error {
	if len(rs) == 0 {
		return fmt.Errorf("bench: no quantizations to plot")
	}
	labels := make([]string, len(rs))
	for i, r := range rs {
		labels[i] = quantLabel(r.Model)
	}
	type series struct {
		name string
		xy   plotter.XYs
	}
	panel := func(title, xl, yl string, ss []series) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = xl
		p.Y.Label.Text = yl
		p.Add(plotter.NewGrid())
		for i, s := range ss {
			sc, err := plotter.NewScatter(s.xy)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			sc.GlyphStyle.Radius = vg.Points(3)
			sc.GlyphStyle.Color = plotColor(i)
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: s.xy, Labels: labels})
			if err != nil {
				return nil, err
			}
			for j := range lb.TextStyle {
				lb.TextStyle[j].Font.Size = vg.Points(8)
				lb.TextStyle[j].XAlign = draw.XLeft
			}
			lb.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(2)}
			p.Add(sc, lb)
			if len(ss) > 1 {
				p.Legend.Add(s.name, sc)
			}
		}
		p.Legend.Top = true
		padPanel(p)
		return p, nil
	}
	var pp, tg, kldSize, topSize plotter.XYs
	for _, r := range rs {
		mib := float64(r.Size) / (1 << 20)
		pp = append(pp, plotter.XY{X: r.Quality.KLD, Y: r.PPTS})
		tg = append(tg, plotter.XY{X: r.Quality.KLD, Y: r.TGTS})
		kldSize = append(kldSize, plotter.XY{X: mib, Y: r.Quality.KLD})
		topSize = append(topSize, plotter.XY{X: mib, Y: 100 * r.Quality.SameTop})
	}
	var row []*plot.Plot
	for _, spec := range []struct {
		title, xl, yl string
		ss            []series
	}{
		{"prompt processing", "mean KL divergence from the base", rs[0].PP.Test + " tokens/s", []series{{rs[0].PP.Test, pp}}},
		{"generation", "mean KL divergence from the base", rs[0].TG.Test + " tokens/s", []series{{rs[0].TG.Test, tg}}},
		{"KL divergence", "file size (MiB)", "mean KL divergence", []series{{"KLD", kldSize}}},
		{"top-1 agreement", "file size (MiB)", "same top token (%)", []series{{"same top", topSize}}},
	} {
		p, err := panel(spec.title, spec.xl, spec.yl, spec.ss)
		if err != nil {
			return err
		}
		row = append(row, p)
	}
	rows := [][]*plot.Plot{row[:2], row[2:]}
	width, height := 10*vg.Inch, 7*vg.Inch
	canvas, err := newCanvas(format, width, height)
	if err != nil {
		return err
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Millimeter * 8, PadY: vg.Millimeter * 8, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		for j := range rows[i] {
			rows[i][j].Draw(canvases[i][j])
		}
	}
	_, err = canvas.WriteTo(w)
	return err
}

// padPanel widens a panel's ranges so that points and their labels stay
// inside, and starts the y axis at 0.
func padPanel(p *plot.Plot) {
	dx := p.X.Max - p.X.Min
	if dx == 0 {
		dx = math.Max(math.Abs(p.X.Max), 1e-6)
	}
	p.X.Min -= 0.05 * dx
	p.X.Max += 0.25 * dx // room for the labels
	p.Y.Min = math.Min(0, p.Y.Min)
	p.Y.Max += 0.1 * math.Max(p.Y.Max-p.Y.Min, 1e-6)
}

// quantLabel shortens a model file name to what tells its quantizations
// apart: the part after the last '-' ("llama-60m-Q4_K_M.gguf": "Q4_K_M").
func quantLabel(name string) string {
	name = strings.TrimSuffix(filepath.Base(name), ".gguf")
	if i := strings.LastIndex(name, "-"); i >= 0 && i < len(name)-1 {
		return name[i+1:]
	}
	return name
}
