package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
)

// figure is one measured value, with the anchor it is compared to (the
// ratio is Value ÷ AnchorValue: higher is better) and its target: a
// minimum ratio (Min), or a maximum value (Max) for figures that have no
// anchor.
type figure struct {
	Name        string
	Value       float64
	Unit        string
	Anchor      string
	AnchorValue float64
	Min         float64
	Max         *float64
}

func (f figure) ratio() float64 {
	if f.AnchorValue == 0 {
		return 0
	}
	return f.Value / f.AnchorValue
}

// target is the target and whether it is met ("" when there is none).
func (f figure) target() (string, bool) {
	switch {
	case f.Anchor != "" && f.Min > 0:
		return fmt.Sprintf("≥ %.1f×", f.Min), f.ratio() >= f.Min
	case f.Max != nil:
		return fmt.Sprintf("≤ %s", num(*f.Max)), f.Value <= *f.Max
	}
	return "", true
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// report prints one line per figure: value, anchor, ratio, target.
func report(w io.Writer, figs []figure, o options) error {
	fmt.Fprintf(w, "manifold bench: %s/%s, %d CPUs, %d connections, %v per throughput figure, upstream latency %v for the cold figures\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), o.workers, o.duration, o.rtt)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tMANIFOLD\tANCHOR\tANCHOR VALUE\tRATIO\tTARGET\t")
	missed := 0
	for _, f := range figs {
		anchor, av, ratio := "", "", ""
		if f.Anchor != "" {
			anchor, av, ratio = f.Anchor, num(f.AnchorValue)+" "+f.Unit, fmt.Sprintf("%.2f×", f.ratio())
		}
		t, ok := f.target()
		if t != "" && !ok {
			t += " MISSED"
			missed++
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\t\n", f.Name, num(f.Value), f.Unit, anchor, av, ratio, t)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	line := "every target met"
	if missed > 0 {
		line = fmt.Sprintf("%d target%s missed", missed, strings.Repeat("s", min(missed-1, 1)))
	}
	_, err := fmt.Fprintf(w, "\n%s\n", line)
	return err
}
