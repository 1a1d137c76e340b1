package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// PlotFile draws the tokens/s of the results to path, an .svg or .png
// file (see Plot).
func PlotFile(path string, results []Result) error {
	return plotFile(path, func(w io.Writer, format string) error { return Plot(w, format, results) })
}

// newCanvas is a canvas of the given size that writes format, svg or png.
func newCanvas(format string, width, height vg.Length) (vg.CanvasWriterTo, error) {
	switch format {
	case "svg":
		return vgsvg.New(width, height), nil
	case "png":
		return vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110))}, nil
	}
	return nil, fmt.Errorf("bench: plot format %q (want svg or png)", format)
}

// plotFile writes what draw draws to path in the format its extension
// names (svg or png), leaving no file behind when drawing fails.
func plotFile(path string, draw func(w io.Writer, format string) error) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format != "svg" && format != "png" {
		return fmt.Errorf("bench: plot %s: the file name must end in .svg or .png", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := draw(f, format); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// Plot draws tokens/s per model (one point for each model file: a quant of
// a model is a model here), with the sample standard deviation as error
// bars, one panel per test (pp512, tg128, ...). Results with a C baseline
// get a second series beside the Go one. The y axis is logarithmic when
// the rates of a panel span more than a factor of 20. format is svg or
// png.
func Plot(w io.Writer, format string, results []Result) error {
	if len(results) == 0 {
		return fmt.Errorf("bench: nothing to plot")
	}
	var models, tests []string
	seen := map[string]bool{}
	for _, r := range results {
		if m := r.ModelLabel(); !seen["m:"+m] {
			seen["m:"+m] = true
			models = append(models, m)
		}
		if !seen["t:"+r.Test] {
			seen["t:"+r.Test] = true
			tests = append(tests, r.Test)
		}
	}
	index := map[string]int{}
	for i, m := range models {
		index[m] = i
	}

	var rows [][]*plot.Plot
	for _, test := range tests {
		var goPts, cPts points
		for _, r := range results {
			if r.Test != test {
				continue
			}
			// A rate of 0 is a test too short for the clock (Windows
			// reads a coarse one): nothing to draw, and no log scale
			// takes it.
			if r.AvgTS <= 0 {
				continue
			}
			x := float64(index[r.ModelLabel()])
			if r.NativeAvgTS > 0 {
				goPts = append(goPts, point{x - 0.15, r.AvgTS, r.StddevTS})
				cPts = append(cPts, point{x + 0.15, r.NativeAvgTS, r.NativeStddevTS})
			} else {
				goPts = append(goPts, point{x, r.AvgTS, r.StddevTS})
			}
		}
		if len(goPts) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = test
		p.Y.Label.Text = "tokens/s"
		p.NominalX(models...)
		p.X.Tick.Label.Rotation = math.Pi / 8
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
		p.X.Min, p.X.Max = -0.5, float64(len(models))-0.5
		lo, hi := math.Inf(1), 0.0
		all := append(append(points{}, goPts...), cPts...)
		for i, pt := range all {
			down, up := all.YError(i) // the error bars as drawn
			lo, hi = min(lo, pt.y-down), max(hi, pt.y+up)
		}
		if hi/math.Max(lo, 1e-9) > 20 {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		} else {
			p.Y.Min = 0
		}
		p.Y.Max = hi * 1.05
		for i, s := range []struct {
			pts   points
			name  string
			shape draw.GlyphDrawer
		}{{goPts, "Go (llamago)", draw.CircleGlyph{}}, {cPts, "C loop (native)", draw.TriangleGlyph{}}} {
			if len(s.pts) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(s.pts)
			if err != nil {
				return err
			}
			sc.GlyphStyle.Shape = s.shape
			sc.GlyphStyle.Radius = vg.Points(3)
			sc.GlyphStyle.Color = plotColor(i)
			eb, err := plotter.NewYErrorBars(s.pts)
			if err != nil {
				return err
			}
			eb.LineStyle.Color = plotColor(i)
			p.Add(sc, eb)
			if len(cPts) > 0 {
				p.Legend.Add(s.name, sc)
			}
		}
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		rows = append(rows, []*plot.Plot{p})
	}

	if len(rows) == 0 {
		return fmt.Errorf("bench: nothing to plot: no test has a rate above 0")
	}
	width := vg.Length(max(6, 0.9*float64(len(models)))) * vg.Inch
	height := vg.Length(3.2*float64(len(rows))) * vg.Inch
	canvas, err := newCanvas(format, width, height)
	if err != nil {
		return err
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadY: vg.Millimeter * 6, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	_, err = canvas.WriteTo(w)
	return err
}

type point struct{ x, y, err float64 }

// points is a plotter.XYer and plotter.YErrorer; the lower error is capped
// so that it stays above zero on a log scale.
type points []point

func (p points) Len() int                    { return len(p) }
func (p points) XY(i int) (float64, float64) { return p[i].x, p[i].y }
func (p points) YError(i int) (float64, float64) {
	return math.Min(p[i].err, 0.95*p[i].y), p[i].err
}

func plotColor(i int) color.Color {
	if i == 0 {
		return color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	}
	return color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
}
