package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// accept is what a runtime asks for by tag: every manifest type.
const accept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

// throughput is what a load run measured.
type throughput struct {
	Requests int64
	Elapsed  time.Duration
}

func (t throughput) perSecond() float64 { return float64(t.Requests) / t.Elapsed.Seconds() }

// drive sends GETs of url from workers keep-alive connections for d (or
// until n requests when n > 0), reading every body; any answer but 200
// ends the run with an error.
func drive(ctx context.Context, url string, workers int, d time.Duration, n int64) (throughput, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	if n > 0 {
		d = 10 * time.Minute // a bound, not the measure
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var done atomic.Int64
	var failure atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 32<<10)
			for ctx.Err() == nil {
				if n > 0 && done.Add(1) > n {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header.Set("Accept", accept)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failure.Store(err)
						cancel()
					}
					return
				}
				_, err = io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if err != nil {
					if ctx.Err() == nil {
						failure.Store(err)
						cancel()
					}
					return // an answer cut by the end of the run is not counted
				}
				if resp.StatusCode != http.StatusOK {
					failure.Store(errStatus(url, resp.StatusCode))
					cancel()
					return
				}
				if n == 0 {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, ok := failure.Load().(error); ok {
		return throughput{}, err
	}
	got := done.Load()
	if n > 0 {
		if ctx.Err() != nil {
			return throughput{}, fmt.Errorf("%s: %d requests not done within %v", url, n, d)
		}
		got = n
	}
	return throughput{Requests: got, Elapsed: elapsed}, nil
}

// download GETs url once and returns the bytes read, the time it took and
// how much the process's resident memory grew at its peak meanwhile.
func download(url string) (int64, time.Duration, int64, error) {
	debug.FreeOSMemory() // what earlier figures left must not hide this one's growth
	base := rss()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if r := rss(); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		close(stop)
		<-sampled
		return 0, 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	if r := rss(); r > peak.Load() {
		peak.Store(r)
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errStatus(url, resp.StatusCode)
	}
	return n, elapsed, max(peak.Load()-base, 0), err
}

// rss is the process's resident set in bytes (Linux), 0 where unknown.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
