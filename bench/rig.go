package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/upstream"
)

// The seeded upstream: repo app holds base 1.0 of four platforms (and,
// under "list", the index the proxy synthesizes for it, stored, for
// distribution to serve by tag); cold8 and cold32 hold base 1 of 8 and 32
// platforms; many holds the many-tag repository; blobs the big blob.
const (
	repoApp   = "bench/app"
	repoMany  = "bench/many"
	repoBlobs = "bench/blobs"
)

var appPlatforms = []string{"linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le"}

// coldPlatforms are 32 distinct platforms, for bases of 8 and 32 members.
var coldPlatforms = func() []string {
	ps := []string{"linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/amd64/v4", "linux/arm/v5", "linux/arm/v6",
		"linux/arm/v7", "linux/arm/v8", "linux/386", "linux/ppc64le", "linux/ppc64", "linux/s390x", "linux/riscv64",
		"linux/mips", "linux/mipsle", "linux/mips64", "linux/mips64le", "linux/loong64", "linux/arm64/v9", "linux/arm64/v8"}
	for i := 1; i <= 9; i++ {
		ps = append(ps, fmt.Sprintf("linux/arm64/v8.%d", i))
	}
	for i := 1; i <= 5; i++ {
		ps = append(ps, fmt.Sprintf("linux/arm64/v9.%d", i))
	}
	return ps[:32]
}()

// rig is every server of a run.
type rig struct {
	o   options
	dir string
	// up is distribution, the upstream, behind a counting, delaying front.
	front *front
	up    *server
	// static serves the synthesized index's bytes; distProxy is
	// distribution in proxy: mode in front of up; px is manifold with the
	// content cache, pass manifold without it.
	static, distProxy, px, pass *server
	content                     *content.Cache
	// index is the synthesized index of app:1.0.
	index     []byte
	mediaType string
	digest    string
	blob      string
}

func newRig(ctx context.Context, dir string, o options) (*rig, error) {
	r := &rig{o: o, dir: dir}
	h, err := distribution(ctx, filepath.Join(dir, "upstream"), "")
	if err != nil {
		return nil, err
	}
	r.front = &front{next: h}
	if r.up, err = serve(r.front); err != nil {
		return nil, err
	}
	if err := waitOK(r.up.URL + "/v2/"); err != nil {
		return nil, err
	}
	if err := r.seed(); err != nil {
		return nil, fmt.Errorf("seeding the upstream: %w", err)
	}
	if r.px, r.content, err = manifold(ctx, r.up.URL, filepath.Join(dir, "content"), nil); err != nil {
		return nil, err
	}
	if r.pass, _, err = manifold(ctx, r.up.URL, "", nil); err != nil {
		return nil, err
	}
	if err := r.storeIndex(); err != nil {
		return nil, err
	}
	r.static, err = serve(staticServer(r.index, r.mediaType, r.digest))
	if err != nil {
		return nil, err
	}
	ph, err := distribution(ctx, filepath.Join(dir, "distproxy"), r.up.URL)
	if err != nil {
		return nil, err
	}
	if r.distProxy, err = serve(ph); err != nil {
		return nil, err
	}
	return r, waitOK(r.distProxy.URL + "/v2/")
}

func (r *rig) seed() error {
	host := upstreamHost(r.up.URL)
	if err := pushMembers(host, repoApp, "1.0", appPlatforms); err != nil {
		return err
	}
	for _, n := range []int{8, 32} {
		if err := pushMembers(host, fmt.Sprintf("bench/cold%d", n), "1", coldPlatforms[:n]); err != nil {
			return err
		}
	}
	if err := tagMany(host, repoMany, r.o.tags); err != nil {
		return err
	}
	d, err := pushBlob(r.up.URL, repoBlobs, r.o.blobMiB<<20)
	r.blob = d
	return err
}

// storeIndex reads the index manifold synthesizes for app:1.0 and stores
// the same bytes upstream under app:list: the anchor of distribution
// serving a stored list by tag.
func (r *rig) storeIndex() error {
	req, _ := http.NewRequest(http.MethodGet, r.px.URL+"/v2/"+repoApp+"/manifests/1.0", nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errStatus(req.URL.String(), resp.StatusCode)
	}
	if r.index, err = io.ReadAll(resp.Body); err != nil {
		return err
	}
	r.mediaType, r.digest = resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest")
	put, _ := http.NewRequest(http.MethodPut, r.up.URL+"/v2/"+repoApp+"/manifests/list", bytes.NewReader(r.index))
	put.Header.Set("Content-Type", r.mediaType)
	resp, err = http.DefaultClient.Do(put)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("storing the index under list: HTTP %d", resp.StatusCode)
	}
	return nil
}

func (r *rig) close() {
	for _, s := range []*server{r.static, r.distProxy, r.px, r.pass, r.up} {
		if s != nil {
			s.close()
		}
	}
}

// rate drives url for the run's duration, after a few warming requests.
func (r *rig) rate(ctx context.Context, url string) (float64, error) {
	if _, err := drive(ctx, url, 1, time.Minute, 20); err != nil {
		return 0, err
	}
	t, err := drive(ctx, url, r.o.workers, r.o.duration, 0)
	return t.perSecond(), err
}

// hot: a bare tag and a digest inside the TTL, against the static limit,
// distribution direct (a stored list, by tag and by digest) and
// distribution in proxy: mode.
func (r *rig) hot(ctx context.Context) ([]figure, error) {
	urls := map[string]string{
		"static":            r.static.URL + "/v2/" + repoApp + "/manifests/1.0",
		"manifold tag":      r.px.URL + "/v2/" + repoApp + "/manifests/1.0",
		"manifold digest":   r.px.URL + "/v2/" + repoApp + "/manifests/" + r.digest,
		"direct tag":        r.up.URL + "/v2/" + repoApp + "/manifests/list",
		"direct digest":     r.up.URL + "/v2/" + repoApp + "/manifests/" + r.digest,
		"proxy-mode tag":    r.distProxy.URL + "/v2/" + repoApp + "/manifests/list",
		"proxy-mode digest": r.distProxy.URL + "/v2/" + repoApp + "/manifests/" + r.digest,
	}
	got := map[string]float64{}
	for _, k := range []string{"static", "manifold tag", "direct tag", "proxy-mode tag", "manifold digest", "direct digest", "proxy-mode digest"} {
		v, err := r.rate(ctx, urls[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		got[k] = v
	}
	return []figure{
		{Name: "hot tag GET", Value: got["manifold tag"], Unit: "req/s", Anchor: "static limit", AnchorValue: got["static"], Min: 0.7},
		{Name: "hot tag GET", Value: got["manifold tag"], Unit: "req/s", Anchor: "distribution direct", AnchorValue: got["direct tag"], Min: 6},
		{Name: "hot tag GET", Value: got["manifold tag"], Unit: "req/s", Anchor: "distribution proxy mode", AnchorValue: got["proxy-mode tag"]},
		{Name: "hot digest GET", Value: got["manifold digest"], Unit: "req/s", Anchor: "static limit", AnchorValue: got["static"]},
		{Name: "hot digest GET", Value: got["manifold digest"], Unit: "req/s", Anchor: "distribution direct", AnchorValue: got["direct digest"]},
		{Name: "hot digest GET", Value: got["manifold digest"], Unit: "req/s", Anchor: "distribution proxy mode", AnchorValue: got["proxy-mode digest"]},
	}, nil
}

// upstreamRequests: what hot GETs inside the TTL cost the upstream.
func (r *rig) upstreamRequests(ctx context.Context) ([]figure, error) {
	url := r.px.URL + "/v2/" + repoApp + "/manifests/1.0"
	// Inside the TTL from here on, however long the earlier figures took.
	if _, err := drive(ctx, url, 1, time.Minute, 1); err != nil {
		return nil, err
	}
	before := r.front.requests.Load()
	if _, err := drive(ctx, url, r.o.workers, time.Minute, r.o.hotGETs); err != nil {
		return nil, err
	}
	per10k := float64(r.front.requests.Load()-before) * 10000 / float64(r.o.hotGETs)
	return []figure{{Name: "upstream requests per 10k hot GETs", Value: per10k, Unit: "requests", Max: ptr(0)}}, nil
}

// cold: a bare tag of 8 and of 32 members on a new proxy (cold caches,
// the upstream client's token kept, as a running replica has it), every
// upstream request rtt late. Round trips are the time the latency adds,
// in rtt: the same synthesis without the latency, measured in the same
// run, is the CPU and loopback time of the proxy and of the upstream
// (which shares this machine), not round trips.
func (r *rig) cold(ctx context.Context) ([]figure, error) {
	client, err := upstream.New(upstream.Options{URL: r.up.URL})
	if err != nil {
		return nil, err
	}
	var figs []figure
	for _, n := range []int{8, 32} {
		path := fmt.Sprintf("/v2/bench/cold%d/manifests/1", n)
		// The first warms the client's token for the repository.
		if _, _, err := r.coldOnce(ctx, client, path); err != nil {
			return nil, err
		}
		var flat, late time.Duration
		var reqs int64
		for range r.o.coldRuns {
			took, _, err := r.coldOnce(ctx, client, path)
			if err != nil {
				return nil, err
			}
			flat += took
			r.front.delay.Store(int64(r.o.rtt))
			took, n, err := r.coldOnce(ctx, client, path)
			r.front.delay.Store(0)
			if err != nil {
				return nil, err
			}
			late += took
			reqs += n
		}
		runs := float64(r.o.coldRuns)
		name := fmt.Sprintf("cold synthesis, %d members", n)
		figs = append(figs,
			figure{Name: name, Value: float64(late-flat) / runs / float64(r.o.rtt), Unit: "round trips", Max: ptr(4)},
			figure{Name: name, Value: float64(late) / runs / 1e6, Unit: fmt.Sprintf("ms at +%v per request", r.o.rtt)},
			figure{Name: name, Value: float64(reqs) / runs, Unit: "upstream requests"})
	}
	return figs, nil
}

// coldOnce GETs path on a new proxy: the time and the upstream requests.
func (r *rig) coldOnce(ctx context.Context, client *upstream.Client, path string) (time.Duration, int64, error) {
	px, _, err := manifold(ctx, r.up.URL, "", client)
	if err != nil {
		return 0, 0, err
	}
	defer px.close()
	before := r.front.requests.Load()
	start := time.Now()
	_, err = drive(ctx, px.URL+path, 1, time.Minute, 1)
	return time.Since(start), r.front.requests.Load() - before, err
}

func ptr(f float64) *float64 { return &f }
