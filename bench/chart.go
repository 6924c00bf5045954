package main

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// drawChart draws the ratio of every anchored figure as a point on a log
// scale, with a dashed line at 1× (as fast as the anchor) and a mark at
// each figure's target.
func drawChart(path string, figs []figure) error {
	var ratios, targets plotter.XYs
	var labels []string
	for _, f := range figs {
		if f.Anchor == "" || f.ratio() <= 0 {
			continue
		}
		x := float64(len(labels))
		ratios = append(ratios, plotter.XY{X: x, Y: f.ratio()})
		if f.Min > 0 {
			targets = append(targets, plotter.XY{X: x, Y: f.Min})
		}
		labels = append(labels, f.Name+"\nvs "+f.Anchor)
	}
	p := plot.New()
	p.Title.Text = "manifold ÷ anchor, one run (higher is better; ■ target)"
	p.Y.Label.Text = "ratio (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	pts, err := plotter.NewScatter(ratios)
	if err != nil {
		return err
	}
	pts.GlyphStyle = draw.GlyphStyle{Shape: draw.CircleGlyph{}, Radius: vg.Points(5), Color: color.RGBA{R: 0x2b, G: 0x6c, B: 0xb0, A: 0xff}}
	p.Add(pts)
	if len(targets) > 0 {
		t, err := plotter.NewScatter(targets)
		if err != nil {
			return err
		}
		t.GlyphStyle = draw.GlyphStyle{Shape: draw.BoxGlyph{}, Radius: vg.Points(2), Color: color.RGBA{R: 0xc0, G: 0x30, B: 0x30, A: 0xff}}
		p.Add(t)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 1}, {X: float64(len(labels)) - 0.5, Y: 1}})
	if err != nil {
		return err
	}
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.NominalX(labels...)
	p.X.Tick.Label.Rotation = 0.6
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	return p.Save(vg.Length(len(labels))*vg.Inch*0.9+2*vg.Inch, 6*vg.Inch, path)
}
