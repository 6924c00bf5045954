package proxy_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

// BenchmarkCachedIndex: a warm index, served from the caches. Reports the
// upstream requests per op, which must be 0.
func BenchmarkCachedIndex(b *testing.B) {
	e := newEnv(b)
	seed(e, "app", "1")
	if resp, _ := e.do(http.MethodGet, "/v2/app/manifests/1"); resp.StatusCode != 200 {
		b.Fatal(resp.StatusCode)
	}
	e.resetRequests()
	b.ResetTimer()
	for range b.N {
		resp, err := http.Get(e.proxy.URL + "/v2/app/manifests/1")
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(len(e.upstreamRequests()))/float64(b.N), "upstream-req/op")
}

// BenchmarkColdSynthesis8: 8 members, cold caches, an upstream that adds
// 20 ms to every request. Reports the time in upstream round trips
// (rtt/op): resolving members one by one would take 8 × (HEAD + manifest
// + config) = 24 round trips plus the tag list; concurrently it is a few.
func BenchmarkColdSynthesis8(b *testing.B) {
	e := newEnv(b)
	seed(e, "app", "1")
	const rtt = 20 * time.Millisecond
	e.delay.Store(int64(rtt))
	// Baseline in the same run: one upstream round trip through the proxy.
	start := time.Now()
	if resp, _ := e.do(http.MethodGet, "/v2/app/manifests/1-linux-amd64"); resp.StatusCode != 200 {
		b.Fatal(resp.StatusCode)
	}
	one := time.Since(start)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		srv := e.newProxy() // cold caches, cold token
		b.StartTimer()
		resp, err := http.Get(srv.URL + "/v2/app/manifests/1")
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err)
		}
		resp.Body.Close()
		b.StopTimer()
		srv.Close()
		b.StartTimer()
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per)/float64(rtt), "rtt/op")
	b.ReportMetric(float64(per)/float64(one), "x-single-passthrough")
}

// BenchmarkStreamBlob: bytes allocated while streaming a 64 MiB blob.
func BenchmarkStreamBlob(b *testing.B) {
	for range b.N {
		alloc := streamBlob(b, 64<<20)
		b.ReportMetric(float64(alloc), "alloc-bytes/64MiB")
	}
}

func seed(e *env, repo, base string) {
	for _, p := range platforms {
		pl, _ := platform.Parse(p)
		e.push(repo+":"+base+"-"+index.FormatSuffix(pl), platformImage(e.t, p, false))
	}
}
