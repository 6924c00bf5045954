package proxy_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// blobBench is distribution v3 on filesystem storage holding one blob,
// the anchor the content cache is measured against.
type blobBench struct {
	reg  *embedded.Registry
	up   *upstream.Client
	d    v1.Hash
	size int64
}

func newBlobBench(b *testing.B, size int) *blobBench {
	b.Helper()
	reg, err := embedded.Start(context.Background(), embedded.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = reg.Close(context.Background()) })
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	l := static.NewLayer(data, types.DockerLayer)
	repo, err := name.NewRepository(strings.TrimPrefix(reg.URL, "http://")+"/big", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.WriteLayer(repo, l); err != nil {
		b.Fatal(err)
	}
	d, _ := l.Digest()
	c, err := upstream.New(upstream.Options{URL: reg.URL})
	if err != nil {
		b.Fatal(err)
	}
	return &blobBench{reg: reg, up: c, d: d, size: int64(size)}
}

// proxy serves the blob's registry through a proxy with a fresh content
// cache (cold) in dir.
func (bb *blobBench) proxy(b *testing.B, dir string) (*httptest.Server, *content.Cache) {
	b.Helper()
	c := newContent(b, dir, 0)
	p, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Client: bb.up}}, Content: c})
	if err != nil {
		b.Fatal(err)
	}
	return httptest.NewServer(p), c
}

// discard is io.Discard without ReadFrom, so that every download is read
// with the same 1 MiB buffer.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// get downloads the blob from base and returns how long it took.
func (bb *blobBench) get(b *testing.B, base string, buf []byte) time.Duration {
	b.Helper()
	start := time.Now()
	resp, err := http.Get(base + "/v2/big/blobs/" + bb.d.String())
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.CopyBuffer(discard{}, resp.Body, buf)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n != bb.size {
		b.Fatalf("GET %s: %d, %d bytes, %v", base, resp.StatusCode, n, err)
	}
	return time.Since(start)
}

// BenchmarkContentBlob measures, in one run, a 256 MiB blob downloaded
// from distribution v3 (filesystem storage) directly, through the proxy
// with the blob in its content cache, and through a proxy whose cache is
// cold (the blob streamed while it is written, verified, committed); and
// reports the throughputs and the ratios cached/direct and cold/direct.
func BenchmarkContentBlob(b *testing.B) {
	bb := newBlobBench(b, benchSize(256<<20, 8<<20))
	warm, wc := bb.proxy(b, b.TempDir())
	defer warm.Close()
	buf := make([]byte, 1<<20)
	bb.get(b, bb.reg.URL, buf) // page cache, connections, token
	bb.get(b, warm.URL, buf)
	waitFills(wc) // the fill's commit
	var direct, cached, cold, directCPU, coldCPU time.Duration
	b.ResetTimer()
	for range b.N {
		c0 := cpuTime()
		direct += bb.get(b, bb.reg.URL, buf)
		directCPU += cpuTime() - c0
		cached += bb.get(b, warm.URL, buf)
		b.StopTimer()
		srv, c := bb.proxy(b, b.TempDir())
		b.StartTimer()
		c0 = cpuTime()
		cold += bb.get(b, srv.URL, buf)
		coldCPU += cpuTime() - c0
		b.StopTimer()
		waitFills(c) // its commit (after the client got every byte) is not timed
		srv.Close()
		b.StartTimer()
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(bb.size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(direct), "direct-MiB/s")
	b.ReportMetric(mbps(cached), "cached-MiB/s")
	b.ReportMetric(mbps(cold), "cold-MiB/s")
	b.ReportMetric(direct.Seconds()/cached.Seconds(), "cached/direct")
	b.ReportMetric(direct.Seconds()/cold.Seconds(), "cold/direct")
	// CPU of the whole process (registry, proxy, client) per download: a
	// cold fill adds a spool write and a sha256 to what distribution does.
	b.ReportMetric(coldCPU.Seconds()/directCPU.Seconds(), "cold-cpu/direct-cpu")
}

// cpuTime is the CPU time this process used so far (user + system).

// BenchmarkContentRSS: the peak RSS of a proxy process (this test binary,
// run as TestContentRSSChild) that served a blob cold and then cached, for
// blobs of 64 MiB and 512 MiB: flat with blob size.
func BenchmarkContentRSS(b *testing.B) {
	for range b.N {
		for _, size := range []int{benchSize(64<<20, 4<<20), benchSize(512<<20, 16<<20)} {
			b.ReportMetric(float64(childPeakRSS(b, size))/(1<<20), fmt.Sprintf("peak-RSS-MiB@%dMiB", size>>20))
		}
	}
}

// childPeakRSS starts a proxy process in front of a registry holding a
// blob of size bytes, downloads the blob through it twice (cold, then
// cached) and returns the process's peak RSS (VmHWM).
func childPeakRSS(b *testing.B, size int) int64 {
	b.Helper()
	bb := newBlobBench(b, size)
	cmd := exec.Command(os.Args[0], "-test.run=^TestContentRSSChild$", "-test.v")
	cmd.Env = append(os.Environ(), "MANIFOLD_RSS_CHILD="+bb.reg.URL+" "+b.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close() // the child exits when its stdin closes
		_ = cmd.Wait()
	}()
	addr := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		b.Fatal("the child proxy did not start")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	buf := make([]byte, 1<<20)
	bb.get(b, "http://"+addr, buf)
	time.Sleep(200 * time.Millisecond)
	bb.get(b, "http://"+addr, buf)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// TestContentRSSChild is the proxy process of BenchmarkContentRSS; it runs
// only when that benchmark starts it.
func TestContentRSSChild(t *testing.T) {
	spec := os.Getenv("MANIFOLD_RSS_CHILD")
	if spec == "" {
		t.Skip("run by BenchmarkContentRSS")
	}
	url, dir, _ := strings.Cut(spec, " ")
	c, err := upstream.New(upstream.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}, Content: newContent(t, dir, 0)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	fmt.Println("listening", strings.TrimPrefix(srv.URL, "http://"))
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// BenchmarkContentSecondPull: an image pulled once (two platforms of an
// 8-member bare tag) is pulled again after the tag's TTL: the upstream
// requests per pull are the tag's revalidation only (tags/list and a HEAD
// per member tag), none for content.
func BenchmarkContentSecondPull(b *testing.B) {
	e, _, clk := contentEnv(b, 0)
	seed(e, "app", "1")
	ps := []string{"linux/amd64", "linux/arm64/v8"}
	for _, p := range ps {
		if _, err := pull(e.host, "app:1", p); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the fills' commits
	e.reg.Reset()
	b.ResetTimer()
	for range b.N {
		clk.advance(time.Minute) // past the TTL (30s)
		for _, p := range ps {
			if _, err := pull(e.host, "app:1", p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	reqs := e.reg.Requests()
	b.ReportMetric(float64(len(reqs))/float64(b.N*len(ps)), "upstream-req/pull")
	b.ReportMetric(float64(len(contentRequests(reqs)))/float64(b.N*len(ps)), "content-req/pull")
	tagReqs := 0
	for _, r := range reqs {
		if strings.HasSuffix(r, "/tags/list") || (strings.HasPrefix(r, "HEAD ") && !strings.Contains(r, "sha256:")) {
			tagReqs++
		}
	}
	b.ReportMetric(float64(tagReqs)/float64(b.N*len(ps)), "tag-revalidation-req/pull")
}
