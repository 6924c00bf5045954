package e2e_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// scaleTTL is the fleet's cache.ttl: short, so that a member re-pushed
// upstream moves its tag within the test.
const scaleTTL = 3 * time.Second

// fleet is what TestScaleOut runs: replicas of `proxy serve` sharing a
// Redis and an S3-API server (versitygw) for the index store and the
// content cache, behind a real HAProxy, in front of an upstream of their
// own (distribution v3, every request logged).
type fleet struct {
	s        *suite
	up       *regtest.Registry
	redis    *regtest.RedisServer
	s3       *regtest.S3Server
	cfg      string // the replicas' --config
	replicas []*proxyProc
	lb       *regtest.HAProxy
}

func startFleet(t *testing.T, s *suite, n int) *fleet {
	t.Helper()
	f := &fleet{s: s, up: regtest.NewRegistry(t), redis: regtest.StartRedis(t), s3: regtest.StartS3(t)}
	cfg := map[string]any{
		"cache": map[string]any{
			"ttl":     scaleTTL.String(),
			"content": map[string]any{"driver": "s3", "parameters": f.s3.Parameters("/content")},
		},
		"store": map[string]any{"driver": "s3", "parameters": f.s3.Parameters("/indexes")},
		"redis": map[string]any{"addrs": []string{f.redis.Addr}},
	}
	b, err := json.Marshal(cfg) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = filepath.Join(s.tempDir(t, "scale-config"), "manifold.yaml")
	if err := os.WriteFile(f.cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for i := range n {
		px := f.startReplica(t, fmt.Sprintf("replica-%c", 'a'+i))
		f.replicas = append(f.replicas, px)
		hosts = append(hosts, px.host)
	}
	f.lb = regtest.StartHAProxy(t, hosts)
	return f
}

func (f *fleet) startReplica(t *testing.T, name string) *proxyProc {
	t.Helper()
	px, err := f.s.startProxyOn(name, f.up.URL, "--config", f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopInCleanup(t, px.proc)
	return px
}

// push pushes one Docker-typed image per platform under <base>-<suffix>
// and returns them by tag.
func (f *fleet) push(t *testing.T, repo, base string, platforms map[string]string) map[string]v1.Image {
	t.Helper()
	out := map[string]v1.Image{}
	for suffix, p := range platforms {
		img := regtest.PlatformImage(t, p, false)
		f.up.Push(t, repo, base+"-"+suffix, img)
		out[base+"-"+suffix] = img
	}
	return out
}

var (
	twoPlatforms   = map[string]string{"linux-amd64": "linux/amd64", "linux-arm64": "linux/arm64/v8"}
	threePlatforms = map[string]string{"linux-amd64": "linux/amd64", "linux-arm64": "linux/arm64/v8", "linux-arm-v7": "linux/arm/v7"}
	fourPlatforms  = map[string]string{"linux-amd64": "linux/amd64", "linux-arm64": "linux/arm64/v8", "linux-arm-v7": "linux/arm/v7", "linux-ppc64le": "linux/ppc64le"}
)

// scaleClient keeps connections alive (HAProxy still balances each
// request: it opens a new server connection per request).
var scaleClient = &http.Client{
	Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64},
	Timeout:   30 * time.Second,
}

// answer is one response, read whole.
type answer struct {
	status int
	digest string // Docker-Content-Digest
	ctype  string
	body   []byte
}

// fetch sends method to url asking for every manifest type; safe in any
// goroutine (no t).
func fetch(method, url string) (answer, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return answer{}, err
	}
	for _, a := range regtest.AllManifestTypes {
		req.Header.Add("Accept", a)
	}
	resp, err := scaleClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: reading the body: %w", method, url, err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"), body}, nil
}

// mustFetch is fetch that fails the test unless the answer is 200 and,
// for a GET, its body hashes to its Docker-Content-Digest.
func mustFetch(t *testing.T, method, url string) answer {
	t.Helper()
	a, err := fetch(method, url)
	if err != nil {
		t.Fatal(err)
	}
	if a.status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, url, a.status, a.body)
	}
	if method == http.MethodGet && sha256Of(a.body).String() != a.digest {
		t.Fatalf("%s %s: Docker-Content-Digest %s, body hashes to %s", method, url, a.digest, sha256Of(a.body))
	}
	return a
}

func manifestURL(host, repo, ref string) string {
	return "http://" + host + "/v2/" + repo + "/manifests/" + ref
}

// TestScaleOut: three `proxy serve` replicas behind HAProxy, sharing Redis
// (tag cache, fleet-wide single-flight) and S3 (index store, content
// cache), agree on every index, serve each other's digests, synthesize a
// cold tag once for the fleet, keep content through an upstream outage
// and pulls through a Redis outage, and pass a chunked upload spread over
// all three through to the upstream intact.
func TestScaleOut(t *testing.T) {
	s := shared(t)
	f := startFleet(t, s, 3)
	t.Run("determinism", f.testDeterminism)
	t.Run("digest-on-any-replica", f.testDigestAnyReplica)
	t.Run("cold-burst", f.testColdBurst)
	t.Run("figures", f.testFigures)
	t.Run("chunked-upload", f.testChunkedUpload)
	t.Run("clients", f.testClients)
	t.Run("runtimes", f.testRuntimes)
	t.Run("s3-down", f.testS3Down)
	t.Run("redis-down", f.testRedisDown)
	t.Run("content-upstream-down", f.testContentUpstreamDown) // last: stops the upstream
}

// (a) The bare tag through the load balancer is the synthesized index,
// and every replica, asked directly, serves the same bytes.
func (f *fleet) testDeterminism(t *testing.T) {
	const repo = "scale/determinism"
	imgs := f.push(t, repo, "1.0", threePlatforms)
	a := mustFetch(t, http.MethodGet, manifestURL(f.lb.Addr, repo, "1.0"))
	if a.ctype != string(types.DockerManifestList) {
		t.Errorf("1.0 through HAProxy: Content-Type %q, want %q", a.ctype, types.DockerManifestList)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(a.body))
	if err != nil {
		t.Fatalf("1.0 through HAProxy: %v\n%s", err, a.body)
	}
	var want, got []string
	for _, img := range imgs {
		d, _ := img.Digest()
		want = append(want, d.String())
	}
	for _, e := range im.Manifests {
		got = append(got, e.Digest.String())
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("1.0 through HAProxy lists %v, want the members %v", got, want)
	}
	for _, px := range f.replicas {
		b := mustFetch(t, http.MethodGet, manifestURL(px.host, repo, "1.0"))
		if b.digest != a.digest || !bytes.Equal(b.body, a.body) {
			t.Errorf("%s serves 1.0 as %s, HAProxy served %s: replicas disagree", px.name, b.digest, a.digest)
		}
	}
}

// (b) A digest one replica resolved is served by the others, and stays
// served after a member is re-pushed upstream (the tag then names another
// index): from the shared index store, even by a replica started after.
func (f *fleet) testDigestAnyReplica(t *testing.T) {
	const repo = "scale/digest"
	f.push(t, repo, "2.0", twoPlatforms)
	a, b, c := f.replicas[0], f.replicas[1], f.replicas[2]
	old := mustFetch(t, http.MethodHead, manifestURL(a.host, repo, "2.0")).digest
	for _, px := range []*proxyProc{b, c} {
		if got := mustFetch(t, http.MethodGet, manifestURL(px.host, repo, old)); got.digest != old {
			t.Errorf("%s: GET %s answered %s", px.name, old, got.digest)
		}
	}
	f.push(t, repo, "2.0", map[string]string{"linux-arm64": "linux/arm64/v8"})
	time.Sleep(scaleTTL + 500*time.Millisecond) // every replica's tag answers expire
	moved := mustFetch(t, http.MethodGet, manifestURL(f.lb.Addr, repo, "2.0")).digest
	if moved == old {
		t.Fatalf("2.0 still names %s after a member was re-pushed and the TTL passed", old)
	}
	for i := range len(f.replicas) { // round robin: each replica once
		if got := mustFetch(t, http.MethodGet, manifestURL(f.lb.Addr, repo, old)); got.digest != old {
			t.Errorf("request %d through HAProxy for the old index %s answered %s", i, old, got.digest)
		}
	}
	fresh := f.startReplica(t, "replica-fresh")
	if got := mustFetch(t, http.MethodGet, manifestURL(fresh.host, repo, old)); got.digest != old {
		t.Errorf("a replica started after the re-push answered %s for the old index %s", got.digest, old)
	}
	_ = fresh.stop(stopGrace)
}

// burst sends n requests from workers goroutines and returns how many
// each answer (digest, or the error) came.
func burst(n, workers int, do func(i int) (string, error)) map[string]int {
	var mu sync.Mutex
	out := map[string]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d, err := do(i)
				if err != nil {
					d = "error: " + err.Error()
				}
				mu.Lock()
				out[d]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// getDigest is a GET of url whose answer must be 200 and whole.
func getDigest(url string) (string, error) {
	a, err := fetch(http.MethodGet, url)
	if err != nil {
		return "", err
	}
	if a.status != http.StatusOK {
		return "", fmt.Errorf("%d %s", a.status, bytes.TrimSpace(a.body))
	}
	if got := sha256Of(a.body).String(); got != a.digest {
		return "", fmt.Errorf("Docker-Content-Digest %s, body hashes to %s", a.digest, got)
	}
	return a.digest, nil
}

// upstreamCounts sorts the upstream's requests for repo: tag lists,
// member tags (manifests by tag) and content by digest.
type upstreamCounts struct {
	tagsList  int
	byTag     map[string]int // "HEAD 3.0-linux-amd64"
	byDigest  map[string]int // "GET manifests/sha256:…", "GET blobs/sha256:…"
	other     []string
	total     int
	perDigest int // the most requests for one digest
}

// digestSummary is how many times each digest was asked for, by kind:
// "manifests [2 2 2 1], blobs [3 3 3 3]".
func (c upstreamCounts) digestSummary() string {
	per := map[string][]int{}
	for k, n := range c.byDigest {
		kind, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(k, "GET "), "HEAD "), "/")
		per[kind] = append(per[kind], n)
	}
	var parts []string
	for _, kind := range []string{"manifests", "blobs"} {
		slices.Sort(per[kind])
		parts = append(parts, fmt.Sprintf("%s %v", kind, per[kind]))
	}
	return strings.Join(parts, ", ")
}

func countUpstream(reqs []string, repo string) upstreamCounts {
	c := upstreamCounts{byTag: map[string]int{}, byDigest: map[string]int{}}
	prefix := "/v2/" + repo + "/"
	for _, r := range reqs {
		method, path, _ := strings.Cut(r, " ")
		if !strings.HasPrefix(path, prefix) {
			c.other = append(c.other, r)
			continue
		}
		c.total++
		rest := strings.TrimPrefix(path, prefix)
		switch {
		case rest == "tags/list":
			c.tagsList++
		case strings.HasPrefix(rest, "manifests/sha256:") || strings.HasPrefix(rest, "blobs/sha256:"):
			c.byDigest[method+" "+rest]++
		case strings.HasPrefix(rest, "manifests/"):
			c.byTag[method+" "+strings.TrimPrefix(rest, "manifests/")]++
		default:
			c.other = append(c.other, r)
		}
	}
	for _, n := range c.byDigest {
		c.perDigest = max(c.perDigest, n)
	}
	return c
}

// (c) A cold tag asked 300 times at once through HAProxy: one answer for
// all, and one tag list and one resolution per member for the fleet (the
// Redis lock of sharedcache.Redis.Lock makes one replica fetch a tag's
// answer for all), per cache.ttl the burst spans. Content by digest (each member's manifest and config,
// read to know its platform) is immutable and not locked fleet-wide: each
// replica fetches it at most once (its own single-flight), so at most one
// request per replica per digest.
func (f *fleet) testColdBurst(t *testing.T) {
	const repo = "scale/burst"
	f.push(t, repo, "3.0", fourPlatforms)
	f.up.Reset()
	before := f.sharedStats(t)
	url := manifestURL(f.lb.Addr, repo, "3.0")
	start := time.Now()
	got := burst(300, 30, func(int) (string, error) { return getDigest(url) })
	took := time.Since(start)
	t.Logf("cold burst: shared cache (Redis) use per replica: %v", f.sharedStatsSince(t, before))
	if len(got) != 1 {
		t.Errorf("300 concurrent GETs of a cold 3.0 through HAProxy: answers %v, want one digest", got)
	}
	for d := range got {
		if strings.HasPrefix(d, "error") {
			t.Errorf("cold burst: %d × %s", got[d], d)
		}
	}
	c := countUpstream(f.up.Requests(), repo)
	t.Logf("cold burst: 300 GETs (30 workers) in %s; upstream: %d requests for %s — tags/list %d, by tag %v, by digest %s, other %v",
		took.Round(time.Millisecond), c.total, repo, c.tagsList, c.byTag, c.digestSummary(), c.other)
	// One fetch per key for the fleet per TTL: a burst that outlasts the
	// TTL (a loaded machine) revalidates once more per TTL it spans.
	windows := 1 + int(took/scaleTTL)
	if c.tagsList > windows {
		t.Errorf("cold burst: %d tag lists upstream in %s, want at most %d for the fleet (Redis lock, one per cache.ttl %s)", c.tagsList, took, windows, scaleTTL)
	}
	for tag := range fourPlatforms {
		n := 0
		for k, v := range c.byTag {
			if strings.HasSuffix(k, " 3.0-"+tag) {
				n += v
			}
		}
		if n > windows {
			t.Errorf("cold burst: member 3.0-%s resolved %d times upstream in %s, want at most %d for the fleet (Redis lock, one per cache.ttl %s)", tag, n, took, windows, scaleTTL)
		}
	}
	// Content by digest is shared too (and checked against its digest).
	if c.perDigest > windows {
		t.Errorf("cold burst: %d upstream requests for one digest (%v) in %s, want at most %d for the fleet (one per cache.ttl %s)", c.perDigest, c.byDigest, took, windows, scaleTTL)
	}
}

// sharedStats reads every replica's manifold_shared_cache_* counters
// (hits, waits, errors).
func (f *fleet) sharedStats(t *testing.T) []map[string]int {
	t.Helper()
	var out []map[string]int
	for _, px := range f.replicas {
		_, body := regtest.Get(t, http.MethodGet, "http://"+px.host+"/metrics")
		m := map[string]int{}
		for _, line := range strings.Split(string(body), "\n") {
			name, v, ok := strings.Cut(line, " ")
			if ok && strings.HasPrefix(name, "manifold_shared_cache_") {
				var n float64
				fmt.Sscan(v, &n)
				name, _, _ = strings.Cut(strings.TrimPrefix(name, "manifold_shared_cache_"), "_total")
				m[name] += int(n)
			}
		}
		out = append(out, m)
	}
	return out
}

// sharedStatsSince is what each replica's counters moved since before.
func (f *fleet) sharedStatsSince(t *testing.T, before []map[string]int) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for i, now := range f.sharedStats(t) {
		d := map[string]int{}
		for k, v := range now {
			d[k] = v - before[i][k]
		}
		out[f.replicas[i].name] = d
	}
	return out
}

// hot measures n GETs of url by workers goroutines: throughput and the
// mean and 99th-percentile latency; any failure is an error.
func hot(t *testing.T, url string, n, workers int) (perSec float64, mean, p99 time.Duration) {
	t.Helper()
	lat := make([]time.Duration, n)
	start := time.Now()
	got := burst(n, workers, func(i int) (string, error) {
		t0 := time.Now()
		d, err := getDigest(url)
		lat[i] = time.Since(t0)
		return d, err
	})
	took := time.Since(start)
	if len(got) != 1 {
		t.Errorf("%d hot GETs of %s: answers %v, want one digest", n, url, got)
	}
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	slices.Sort(lat)
	return float64(n) / took.Seconds(), sum / time.Duration(n), lat[n*99/100]
}

// The figures the issue asks for: hot bare-tag GETs through HAProxy in
// front of three replicas against one replica directly, and the upstream
// requests a 1000-GET hot loop costs each way, starting as the tag's
// answers expire.
func (f *fleet) testFigures(t *testing.T) {
	const repo = "scale/hot"
	f.push(t, repo, "1.0", threePlatforms)
	lbURL, directURL := manifestURL(f.lb.Addr, repo, "1.0"), manifestURL(f.replicas[0].host, repo, "1.0")
	for range len(f.replicas) { // warm every replica
		mustFetch(t, http.MethodGet, lbURL)
	}
	lbRate, lbMean, lbP99 := hot(t, lbURL, 2000, 8)
	dRate, dMean, dP99 := hot(t, directURL, 2000, 8)
	t.Logf("hot bare-tag GET, 2000 requests, 8 workers: HAProxy + 3 replicas %.0f req/s (mean %s, p99 %s); one replica direct %.0f req/s (mean %s, p99 %s); ratio %.2f (throughput), %.2f (mean latency)",
		lbRate, lbMean.Round(time.Microsecond), lbP99.Round(time.Microsecond), dRate, dMean.Round(time.Microsecond), dP99.Round(time.Microsecond), lbRate/dRate, float64(lbMean)/float64(dMean))

	for _, run := range []struct {
		what string
		url  string
	}{{"3 replicas through HAProxy", lbURL}, {"1 replica direct", directURL}} {
		// Each loop starts just past the TTL, so it pays one revalidation:
		// once for the fleet (Redis), as for one replica.
		time.Sleep(scaleTTL + 200*time.Millisecond)
		f.up.Reset()
		start := time.Now()
		hot(t, run.url, 1000, 8)
		c := countUpstream(f.up.Requests(), repo)
		t.Logf("1000 hot GETs, %s, in %s (cache.ttl %s): %d upstream requests (tags/list %d, by tag %v, by digest %d)",
			run.what, time.Since(start).Round(time.Millisecond), scaleTTL, c.total, c.tagsList, c.byTag, len(c.byDigest))
	}
}

// (f) A chunked upload whose four requests go to three replicas — POST to
// the first, a PATCH to each of the others, the PUT to the first again,
// each at the Location the previous answer gave — lands upstream intact.
func (f *fleet) testChunkedUpload(t *testing.T) {
	const repo = "scale/upload"
	blob := make([]byte, 3<<20+12345)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	d := sha256Of(blob)
	cut := 2 << 20
	steps := []struct {
		method string
		px     *proxyProc
		body   []byte
		start  int
	}{
		{http.MethodPost, f.replicas[0], nil, 0},
		{http.MethodPatch, f.replicas[1], blob[:cut], 0},
		{http.MethodPatch, f.replicas[2], blob[cut:], cut},
		{http.MethodPut, f.replicas[0], nil, 0},
	}
	loc := "/v2/" + repo + "/blobs/uploads/"
	for _, st := range steps {
		u := "http://" + st.px.host + loc
		if st.method == http.MethodPut {
			u += map[bool]string{true: "&", false: "?"}[strings.Contains(loc, "?")] + "digest=" + d.String()
		}
		req, err := http.NewRequest(st.method, u, bytes.NewReader(st.body))
		if err != nil {
			t.Fatal(err)
		}
		if st.body != nil {
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", st.start, st.start+len(st.body)-1))
		}
		resp, body := regtest.DoWith(t, scaleClient, req)
		want := map[string]int{http.MethodPost: http.StatusAccepted, http.MethodPatch: http.StatusAccepted, http.MethodPut: http.StatusCreated}[st.method]
		if resp.StatusCode != want {
			t.Fatalf("%s %s on %s: %d %s, want %d", st.method, loc, st.px.name, resp.StatusCode, body, want)
		}
		if st.method != http.MethodPut {
			if loc = resp.Header.Get("Location"); loc == "" || strings.Contains(loc, st.px.host) {
				t.Fatalf("%s on %s: Location %q, want a path any replica serves", st.method, st.px.name, loc)
			}
		}
	}
	resp, got := regtest.Get(t, http.MethodGet, f.up.Backend+"/v2/"+repo+"/blobs/"+d.String())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, blob) {
		t.Errorf("the upstream's blob %s: %d, %d bytes hashing to %s; pushed %d bytes", d, resp.StatusCode, len(got), sha256Of(got), len(blob))
	}
}

// (e) Redis killed while clients pull through HAProxy: no pull fails, a
// tag warm before keeps its index, and a tag never asked for before is
// synthesized by replicas that no longer reach Redis.
func (f *fleet) testRedisDown(t *testing.T) {
	const repo = "scale/redis"
	f.push(t, repo, "1.0", threePlatforms)
	f.push(t, repo, "2.0", twoPlatforms) // asked for only once Redis is gone
	warm := mustFetch(t, http.MethodGet, manifestURL(f.lb.Addr, repo, "1.0"))
	tagURL, digestURL := manifestURL(f.lb.Addr, repo, "1.0"), manifestURL(f.lb.Addr, repo, warm.digest)
	var done, afterStop, slowest atomic.Int64 // slowest: after the stop, ns
	var stopped atomic.Bool
	stop := make(chan struct{})
	var mu sync.Mutex
	results := map[string]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := tagURL
				if i%2 == 1 {
					u = digestURL
				}
				t0 := time.Now()
				d, err := getDigest(u)
				if err != nil {
					d = "error: " + err.Error()
				}
				if stopped.Load() {
					afterStop.Add(1)
					for took := int64(time.Since(t0)); ; {
						old := slowest.Load()
						if took <= old || slowest.CompareAndSwap(old, took) {
							break
						}
					}
				}
				done.Add(1)
				mu.Lock()
				results[d]++
				mu.Unlock()
			}
		})
	}
	_ = waitFor(nil, 10*time.Second, func() bool { return done.Load() >= 200 })
	f.redis.Stop()
	stopped.Store(true)
	cold := map[string]bool{}
	for range len(f.replicas) { // each replica synthesizes 2.0 without Redis
		a, err := fetch(http.MethodGet, manifestURL(f.lb.Addr, repo, "2.0"))
		if err != nil || a.status != http.StatusOK {
			t.Errorf("2.0, first asked with Redis down: %v %d %s", err, a.status, a.body)
			continue
		}
		cold[a.digest] = true
	}
	time.Sleep(2 * scaleTTL) // past the TTL: tag answers are fetched again, without Redis
	close(stop)
	wg.Wait()
	if len(results) != 1 || results[warm.digest] == 0 {
		t.Errorf("pulls through HAProxy while Redis was stopped: answers %v, want only %s", results, warm.digest)
	}
	if len(cold) != 1 {
		t.Errorf("2.0 synthesized with Redis down: digests %v, want one", cold)
	}
	t.Logf("Redis stopped after %d pulls; %d pulls after, all 200 with the same digest, slowest %s", done.Load()-afterStop.Load(), afterStop.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
	if afterStop.Load() == 0 {
		t.Error("no pull ran after Redis was stopped")
	}
}

// (d) What one replica pulled (a member's manifest by digest, its config
// and layer) is served by another with the upstream stopped: the content
// cache is on S3, shared by the fleet, with its confirmations.
func (f *fleet) testContentUpstreamDown(t *testing.T) {
	const repo = "scale/content"
	img := f.push(t, repo, "1.0", map[string]string{"linux-amd64": "linux/amd64"})["1.0-linux-amd64"]
	md, _ := img.Digest()
	cd, _ := img.ConfigName()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := layers[0].Digest()
	paths := []string{"manifests/" + md.String(), "blobs/" + cd.String(), "blobs/" + ld.String()}
	a, c := f.replicas[0], f.replicas[2]
	for _, p := range paths {
		if _, err := getDigestOrBlob("http://" + a.host + "/v2/" + repo + "/" + p); err != nil {
			t.Fatalf("%s through %s with the upstream up: %v", p, a.name, err)
		}
	}
	f.up.Stop()
	if _, err := fetch(http.MethodGet, f.up.URL+"/v2/"); err == nil {
		t.Fatal("the upstream still answers after Stop")
	}
	for _, host := range []string{c.host, f.lb.Addr, f.lb.Addr, f.lb.Addr} {
		for _, p := range paths {
			var err error
			// A's fill may still be committing to S3: a short wait.
			_ = waitFor(nil, 10*time.Second, func() bool {
				_, err = getDigestOrBlob("http://" + host + "/v2/" + repo + "/" + p)
				return err == nil
			})
			if err != nil {
				t.Errorf("%s via %s with the upstream stopped: %v", p, host, err)
			}
		}
	}
}

// getDigestOrBlob GETs a manifest by digest or a blob and checks that the
// bytes hash to the digest the URL names.
func getDigestOrBlob(url string) (string, error) {
	a, err := fetch(http.MethodGet, url)
	if err != nil {
		return "", err
	}
	if a.status != http.StatusOK {
		return "", fmt.Errorf("%d %s", a.status, bytes.TrimSpace(a.body))
	}
	want := url[strings.LastIndex(url, "/")+1:]
	if got := sha256Of(a.body).String(); got != want {
		return "", fmt.Errorf("%d bytes hashing to %s", len(a.body), got)
	}
	return want, nil
}

// testClients: crane, regctl, skopeo and oras pull every platform of the e2e
// fixtures through the load balancer — each of their requests may land on
// another replica — and crane copies an image in through it (POST, PATCH,
// PUT of every blob, then the manifest, spread over the replicas), which
// lands intact upstream.
func (f *fleet) testClients(t *testing.T) {
	const client = "scale-clients"
	if err := f.s.fx.seed(f.up.Host, []string{client, scaleRuntimes}); err != nil {
		t.Fatal(err)
	}
	repo := repoFor(client)
	at := func(base string) string { return f.lb.Addr + "/" + repo + ":" + base }
	crane := requireTool(t, "crane", hintCrane)
	c := func(args ...string) command { return command{bin: crane, args: args, env: f.s.env()} }
	rc := regctlFor(requireTool(t, "regctl", hintRegctl), f.s.env("REGCTL_CONFIG="+filepath.Join(f.s.tempDir(t, "scale-regctl"), "config.json")), f.lb.Addr)
	dir := f.s.tempDir(t, "scale-skopeo")
	sk := newContainersTool(t, f.s, requireTool(t, "skopeo", hintSkopeo), dir, "--insecure-policy")
	odir := f.s.tempDir(t, "scale-oras")
	o := &orasTool{bin: requireTool(t, "oras", hintOras), env: f.s.env(), regConfig: filepath.Join(odir, "auth.json"), dir: odir}
	for _, g := range f.s.fx.groups {
		for _, m := range g.members {
			t.Run(g.name+"/"+m.slug(), func(t *testing.T) {
				cranePullAndCheck(t, c, m, at(g.base))
				regctlPullAndCheck(t, rc, m, at(g.base))
				skopeoPullAndCheck(t, sk, dir, m, "docker://"+at(g.base))
				orasPullAndCheck(t, o, m, at(g.base))
			})
		}
	}

	m := f.s.fx.groups[0].members[0]
	src := f.up.Host + "/" + repo + ":" + m.tag
	run(t, c("copy", src, f.lb.Addr+"/e2e/scale-pushed:copied"))
	if got := f.up.Head(t, "e2e/scale-pushed", "copied"); got != m.digest.String() {
		t.Errorf("crane copy through the load balancer: upstream holds %q, want %s", got, m.digest)
	}
	cranePullAndCheck(t, c, m, f.up.Host+"/e2e/scale-pushed:copied")
}

// testS3Down: with the S3 server stopped, a base pushed meanwhile is still
// synthesized and its content passed through from the upstream, every
// replica answering; each says in its log what failed; once S3 is back,
// the fleet stores again.
func (f *fleet) testS3Down(t *testing.T) {
	const repo = "scale/s3down"
	f.s3.Stop()
	restarted := false
	defer func() {
		if !restarted { // the later subtests need S3
			f.s3.Restart(t)
		}
	}()
	imgs := f.push(t, repo, "1.0", twoPlatforms)
	var index string
	for range 2 * len(f.replicas) {
		a := mustFetch(t, http.MethodGet, manifestURL(f.lb.Addr, repo, "1.0"))
		if a.status != http.StatusOK || (index != "" && a.digest != index) {
			t.Fatalf("bare tag with S3 stopped: %d %s (first answer %s): %s", a.status, a.digest, index, bytes.TrimSpace(a.body))
		}
		index = a.digest
	}
	for tag, img := range imgs {
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		ld, _ := layers[0].Digest()
		for range len(f.replicas) {
			if _, err := getDigestOrBlob("http://" + f.lb.Addr + "/v2/" + repo + "/blobs/" + ld.String()); err != nil {
				t.Errorf("%s's layer with S3 stopped: %v", tag, err)
			}
		}
	}
	for _, px := range f.replicas {
		warned := ""
		log, _ := os.ReadFile(px.log)
		for _, line := range bytes.Split(log, []byte("\n")) {
			if bytes.Contains(line, []byte(`"level":"WARN"`)) && bytes.Contains(line, []byte(f.s3.Endpoint[len("http://"):])) {
				warned = string(line)
				break
			}
		}
		if warned == "" {
			t.Errorf("%s logged no warning naming the S3 server %s while it was down", px.name, f.s3.Endpoint)
		} else {
			t.Logf("%s: %.300s", px.name, warned)
		}
		// And counts it.
		_, body := regtest.Get(t, http.MethodGet, "http://"+px.host+"/metrics")
		const series = `manifold_storage_errors_total{op="write",storage="store"} `
		i := bytes.Index(body, []byte(series))
		if i < 0 || bytes.HasPrefix(body[i+len(series):], []byte("0\n")) {
			t.Errorf("%s: /metrics does not count the failed index store writes (%s)", px.name, strings.TrimSpace(string(body[max(i, 0):min(max(i, 0)+120, len(body))])))
		}
	}
	f.s3.Restart(t)
	restarted = true
	if a := mustFetch(t, http.MethodGet, manifestURL(f.lb.Addr, repo, "1.0")); a.status != http.StatusOK || a.digest != index {
		t.Errorf("bare tag once S3 is back: %d %s, want %s", a.status, a.digest, index)
	}
}

// scaleRuntimes is the repository testRuntimes pulls (seeded by
// testClients).
const scaleRuntimes = "scale-runtimes"

// testRuntimes: containerd (ctr), dockerd and podman, private instances,
// pull every platform of the e2e fixtures through the load balancer.
func (f *fleet) testRuntimes(t *testing.T) {
	requireRoot(t, "containerd, dockerd and podman")
	repo := repoFor(scaleRuntimes)
	at := func(base string) string { return f.lb.Addr + "/" + repo + ":" + base }
	t.Run("containerd", func(t *testing.T) {
		requireTool(t, "containerd", hintContainerd)
		dir := f.s.tempDir(t, "scale-containerd")
		cd := startContainerd(t, f.s, dir+"/c")
		ns := 0
		for _, g := range f.s.fx.groups {
			idx := indexDigest(t, f.lb.Addr, repo, g)
			for _, m := range g.members {
				ns++
				ctrPullAndCheck(t, cd, fmt.Sprintf("s%d", ns), dir, m, m.arg(), at(g.base), idx, "--plain-http")
			}
		}
	})
	t.Run("dockerd", func(t *testing.T) {
		requireTool(t, "dockerd", hintDocker)
		dk := startDocker(t, f.s)
		for _, g := range f.s.fx.groups {
			for _, m := range g.members {
				if m.windows() {
					dockerRefusesWindows(t, dk, m, m.arg(), at(g.base))
					continue
				}
				dockerPullAndCheck(t, dk, m, m.arg(), at(g.base), at(g.base))
			}
		}
	})
	t.Run("podman", func(t *testing.T) {
		bin := requireTool(t, "podman", hintPodman)
		requireTool(t, "unshare", hintUnshare)
		// A short directory name: podman refuses a runroot over 50 characters.
		pm, root := newPodman(t, f.s, bin, f.s.tempDir(t, "pm"))
		for _, g := range f.s.fx.groups {
			for _, m := range g.members {
				podmanPullAndCheck(t, pm, root, m, m.arg(), at(g.base), "--tls-verify=false")
			}
		}
	})
}
