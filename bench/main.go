// Command bench measures manifold against its anchors in one run, on this
// machine: a static-bytes server (the limit of a Go HTTP server here),
// distribution v3 serving the same repository directly, distribution in
// pull-through (proxy:) mode, and the proxy, all in front of one seeded
// distribution upstream on loopback. It prints each figure with its ratio
// to the anchors and the target it is held to, and can draw the ratios as
// a PNG chart. Ratios, not absolute figures, are what carry from one
// machine to another.
//
//	go run ./bench                      # the full run, a few minutes
//	go run ./bench -chart docs/performance.png
//	go run ./bench -short               # a smoke run, seconds
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"time"
)

// options of a run.
type options struct {
	// duration each throughput figure is driven for; workers are the
	// concurrent keep-alive connections.
	duration time.Duration
	workers  int
	// blobMiB is the blob of the throughput figures; tags the size of the
	// many-tag repository; coldRuns the cold syntheses averaged.
	blobMiB  int64
	tags     int
	coldRuns int
	// hotGETs are the requests over which upstream requests are counted.
	hotGETs int64
	// rtt is the latency added to every upstream request for the cold
	// figures.
	rtt time.Duration
	// chart, when set, is where the PNG chart of the ratios goes.
	chart string
	// only, when set, names the groups of figures to measure.
	only map[string]bool
}

func defaults(short bool) options {
	if short {
		return options{duration: 300 * time.Millisecond, workers: 4, blobMiB: 4, tags: 200, coldRuns: 1, hotGETs: 500, rtt: 20 * time.Millisecond}
	}
	return options{duration: 3 * time.Second, workers: 8, blobMiB: 256, tags: 10000, coldRuns: 5, hotGETs: 10000, rtt: 20 * time.Millisecond}
}

func main() {
	short := flag.Bool("short", false, "a smoke run: tiny sizes and durations (figures not meaningful)")
	chart := flag.String("chart", "", "write a PNG chart of the ratios to this file")
	duration := flag.Duration("duration", 0, "how long each throughput figure is driven (default 3s, 300ms with -short)")
	workers := flag.Int("workers", 0, "concurrent connections of the load generator (default 8)")
	blob := flag.Int64("blob-mib", 0, "size of the blob of the throughput figures, in MiB (default 256)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (servers and load generator) to this file")
	only := flag.String("only", "", "measure only these groups of figures, comma-separated: hot, upstream, cold, tags, blobs (default all)")
	flag.Parse()
	o := defaults(*short)
	o.chart = *chart
	if *only != "" {
		o.only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			if _, ok := groups[g]; !ok {
				fmt.Fprintf(os.Stderr, "bench: -only %s: want some of hot, upstream, cold, tags, blobs\n", g)
				os.Exit(2)
			}
			o.only[g] = true
		}
	}
	if *duration > 0 {
		o.duration = *duration
	}
	if *workers > 0 {
		o.workers = *workers
	}
	if *blob > 0 {
		o.blobMiB = *blob
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// groups are the groups of figures, as -only names them.
var groups = map[string]bool{"hot": true, "upstream": true, "cold": true, "tags": true, "blobs": true}

// run starts the servers, measures every figure and prints the report.
func run(ctx context.Context, o options, w io.Writer) error {
	dir, err := os.MkdirTemp("", "manifold-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, err := newRig(ctx, dir, o)
	if err != nil {
		return err
	}
	defer r.close()
	var figs []figure
	measure := map[string]func(context.Context) ([]figure, error){
		"hot": r.hot, "upstream": r.upstreamRequests, "cold": r.cold, "tags": r.tagList, "blobs": r.blobs,
	}
	for _, g := range []string{"hot", "upstream", "cold", "tags", "blobs"} {
		if o.only != nil && !o.only[g] {
			continue
		}
		got, err := measure[g](ctx)
		if err != nil {
			return err
		}
		figs = append(figs, got...)
	}
	if err := report(w, figs, o); err != nil {
		return err
	}
	if o.chart != "" {
		if err := drawChart(o.chart, figs); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nchart written to %s\n", o.chart)
	}
	return nil
}
