package proxy_test

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// BenchmarkCachedIndex: a warm index, served from the caches. Reports the
// upstream requests per op, which must be 0.
func BenchmarkCachedIndex(b *testing.B) {
	e := newEnv(b)
	seed(e, "app", "1")
	if resp, _ := regtest.Get(b, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1"); resp.StatusCode != 200 {
		b.Fatal(resp.StatusCode)
	}
	e.reg.Reset()
	b.ResetTimer()
	for range b.N {
		resp, err := http.Get(e.proxy.URL + "/v2/app/manifests/1")
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(len(e.reg.Requests()))/float64(b.N), "upstream-req/op")
}

// coldPlatforms are 32 distinct platforms, for groups of 8 and 32 members.
var coldPlatforms = func() []string {
	ps := []string{"linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/amd64/v4", "linux/arm/v5", "linux/arm/v6",
		"linux/arm/v7", "linux/arm/v8", "linux/386", "linux/ppc64le", "linux/ppc64", "linux/s390x", "linux/riscv64",
		"linux/mips", "linux/mipsle", "linux/mips64", "linux/mips64le", "linux/loong64", "linux/arm64/v9", "linux/arm64/v8"}
	for i := 1; len(ps) < 32; i++ {
		ps = append(ps, fmt.Sprintf("linux/arm64/v8.%d", i), fmt.Sprintf("linux/arm64/v9.%d", i))
	}
	return ps[:32]
}()

// BenchmarkColdSynthesis: a bare tag of 8 or 32 members, cold caches, an
// upstream that adds 20 ms to every request. Reports the time in upstream
// round trips (rtt/op) — the tag list, the members' manifests, their
// configs: 3 dependent steps, whatever the number of members — and against
// a single pass-through request in the same run. "cold" is a new proxy
// (caches and token cold: the token exchange's ping adds a round trip);
// "warm-token" keeps the upstream client, as a running replica has it.
func BenchmarkColdSynthesis(b *testing.B) {
	for _, n := range []int{8, 32} {
		e := newEnv(b)
		for _, p := range coldPlatforms[:n] {
			pl, _ := platform.Parse(p)
			e.push("app:1-"+index.FormatSuffix(pl), regtest.PlatformImage(b, p, false))
		}
		const rtt = 20 * time.Millisecond
		e.reg.SetDelay(rtt)
		start := time.Now()
		if resp, _ := regtest.Get(b, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1-linux-amd64"); resp.StatusCode != 200 {
			b.Fatal(resp.StatusCode)
		}
		one := time.Since(start)
		client := e.reg.Client(b)
		for _, mode := range []string{"cold", "warm-token"} {
			b.Run(fmt.Sprintf("%d-members/%s", n, mode), func(b *testing.B) {
				// The same cold synthesis without the added latency, in
				// the same run: what is not round trips (CPU, loopback).
				e.reg.SetDelay(0)
				var base time.Duration
				for range 5 {
					base += coldOnce(b, e, mode == "warm-token", client)
				}
				base /= 5
				e.reg.SetDelay(rtt)
				b.ResetTimer()
				var total time.Duration
				for range b.N {
					total += coldOnce(b, e, mode == "warm-token", client)
				}
				per := total / time.Duration(b.N)
				b.ReportMetric(float64(per)/float64(rtt), "rtt/op")
				b.ReportMetric(float64(per-base)/float64(rtt), "dependent-steps/op")
				b.ReportMetric(float64(per)/float64(one), "x-single-passthrough")
				b.ReportMetric(float64(len(e.reg.Requests())), "upstream-req/last-op")
			})
		}
	}
}

// coldOnce times one GET of the bare tag on a proxy with cold caches (and
// a cold token unless warm, where client keeps its token).
func coldOnce(b *testing.B, e *env, warm bool, client *upstream.Client) time.Duration {
	b.Helper()
	srv := e.newProxy()
	if warm {
		srv = e.newProxy(func(o *proxy.Options) { o.Upstreams[0].Client = client })
		_, _ = regtest.Get(b, http.MethodGet, srv.URL+"/v2/app/manifests/1-linux-amd64")
		srv = e.newProxy(func(o *proxy.Options) { o.Upstreams[0].Client = client })
	}
	e.reg.Reset()
	start := time.Now()
	resp, err := http.Get(srv.URL + "/v2/app/manifests/1")
	if err != nil || resp.StatusCode != 200 {
		b.Fatal(err)
	}
	resp.Body.Close()
	return time.Since(start)
}

// benchSize is full, or short under -short: CI runs every benchmark once
// with -short, as a smoke test (.ci/run), where sizes do not matter.
func benchSize(full, short int) int {
	if testing.Short() {
		return short
	}
	return full
}

// BenchmarkStreamBlob: bytes allocated while streaming a 64 MiB blob.
func BenchmarkStreamBlob(b *testing.B) {
	for range b.N {
		alloc := streamBlob(b, benchSize(64<<20, 4<<20))
		b.ReportMetric(float64(alloc), "alloc-bytes/64MiB")
	}
}

func seed(e *env, repo, base string) {
	for _, p := range platforms {
		pl, _ := platform.Parse(p)
		e.push(repo+":"+base+"-"+index.FormatSuffix(pl), regtest.PlatformImage(e.t, p, false))
	}
}

// BenchmarkRandomDigest (issue 13 H1): GETs of random digests in a
// repository of N tags (N/2 bare tags of 2 members each). Reports the
// upstream requests and the CPU time per GET, the first GET included
// (which searches the repository's bare tags once; later ones are
// answered from the search). MANIFOLD_BENCH_TAGS=100000 adds a size.
func BenchmarkRandomDigest(b *testing.B) {
	sizes := []int{benchSize(2000, 200), benchSize(20000, 400)}
	if n, err := strconv.Atoi(os.Getenv("MANIFOLD_BENCH_TAGS")); err == nil {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		b.Run(strconv.Itoa(n)+"-tags", func(b *testing.B) {
			e := newEnv(b)
			amd := e.push("app:seed-linux-amd64", regtest.PlatformImage(b, "linux/amd64", false))
			arm := e.push("app:seed-linux-arm64", regtest.PlatformImage(b, "linux/arm64/v8", false))
			tagMany(b, e, n, amd, arm)
			e.reg.Reset()
			cpu := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				resp, _ := regtest.Get(b, http.MethodGet, e.proxy.URL+fmt.Sprintf("/v2/app/manifests/sha256:%064x", i+1))
				if resp.StatusCode != http.StatusNotFound {
					b.Fatal(resp.StatusCode)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(e.reg.Requests()))/float64(b.N), "upstream-req/op")
			b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// tagMany tags amd and arm under n/2 bases, 64 at a time.
func tagMany(b *testing.B, e *env, n int, amd, arm v1.Hash) {
	var eg errgroup.Group
	eg.SetLimit(64)
	for i := range n / 2 {
		for _, m := range []struct {
			suffix string
			d      v1.Hash
		}{{"linux-amd64", amd}, {"linux-arm64", arm}} {
			eg.Go(func() error {
				src := regtest.Ref(b, e.reg.Host+"/app@"+m.d.String())
				desc, err := remote.Get(src)
				if err != nil {
					return err
				}
				return remote.Tag(regtest.Ref(b, e.reg.Host+"/"+fmt.Sprintf("app:%d-%s", i, m.suffix)).(name.Tag), desc)
			})
		}
	}
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
