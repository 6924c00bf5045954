package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmoke runs the whole benchmark at its -short sizes, as CI does:
// every server starts, every figure is measured and printed with its
// anchor and ratio, and the chart is a PNG. The figures themselves are
// not judged here (benchmarks are not timed tests).
func TestSmoke(t *testing.T) {
	o := defaults(true)
	o.chart = filepath.Join(t.TempDir(), "chart.png")
	var out bytes.Buffer
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"hot tag GET", "static limit", "distribution direct", "distribution proxy mode", "hot digest GET",
		"upstream requests per 10k hot GETs", "cold synthesis, 8 members", "cold synthesis, 32 members",
		"group 200 tags", "tags/list of 200 tags", "blob GET, 4 MiB, pass-through", "content cache cold",
		"content cache hit", "peak RSS growth", "×",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in the report:\n%s", want, text)
		}
	}
	if strings.Contains(text, "NaN") || strings.Contains(text, "Inf") {
		t.Errorf("a figure is not a number:\n%s", text)
	}
	f, err := os.Open(o.chart)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 400 {
		t.Errorf("chart: %v, %v", err, img)
	}
}
