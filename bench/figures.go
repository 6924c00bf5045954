package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/index"
)

// tagList: grouping the many-tag repository (the proxy's own work, per
// listing), and its tags/list through the proxy against distribution.
func (r *rig) tagList(ctx context.Context) ([]figure, error) {
	resp, err := http.Get(r.up.URL + "/v2/" + repoMany + "/tags/list")
	if err != nil {
		return nil, err
	}
	var list struct{ Tags []string }
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(list.Tags) != r.o.tags {
		return nil, fmt.Errorf("%s lists %d tags, want %d", repoMany, len(list.Tags), r.o.tags)
	}
	res := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			index.Grammar{}.Group(list.Tags)
		}
	})
	name := fmt.Sprintf("group %d tags", r.o.tags)
	figs := []figure{
		{Name: name, Value: float64(res.NsPerOp()) / 1e6, Unit: "ms", Max: ptr(10)},
		{Name: name, Value: float64(res.AllocsPerOp()), Unit: "allocations"},
	}
	path := "/v2/" + repoMany + "/tags/list"
	direct, err := r.rate(ctx, r.up.URL+path)
	if err != nil {
		return nil, err
	}
	through, err := r.rate(ctx, r.px.URL+path)
	if err != nil {
		return nil, err
	}
	return append(figs, figure{Name: fmt.Sprintf("tags/list of %d tags", r.o.tags), Value: through, Unit: "req/s", Anchor: "distribution direct", AnchorValue: direct}), nil
}

// blobs: the big blob direct from distribution, through the proxy without
// the content cache (pass-through), and with it, cold (the blob deleted
// from the cache first) then cached; each with the peak growth of the
// process's resident memory. The four are interleaved, blobRounds times,
// and each figure is its median round: one download of a few hundred MiB
// on loopback swings by a third from one to the next.
func (r *rig) blobs(ctx context.Context) ([]figure, error) {
	path := "/v2/" + repoBlobs + "/blobs/" + r.blob
	size := r.o.blobMiB << 20
	d, err := v1.NewHash(r.blob)
	if err != nil {
		return nil, err
	}
	var rates [4][]float64
	var growth [4]int64
	for range blobRounds {
		for i, url := range []string{r.up.URL + path, r.pass.URL + path, r.px.URL + path, r.px.URL + path} {
			var filled int64
			switch i {
			case 2:
				settle(r.content)
				if err := r.content.Delete(ctx, content.Blob, d); err != nil && !errors.Is(err, content.ErrNotFound) {
					return nil, err
				}
			case 3:
				settle(r.content)
				filled = r.content.Stats.UpstreamBytes.Load()
			}
			n, took, grew, err := download(url)
			if err != nil {
				return nil, err
			}
			if n != size {
				return nil, fmt.Errorf("GET %s: %d bytes, want %d", url, n, size)
			}
			if i == 3 && r.content.Stats.UpstreamBytes.Load() != filled {
				return nil, fmt.Errorf("the second GET of the blob was not served from the content cache")
			}
			rates[i] = append(rates[i], float64(n)/(1<<20)/took.Seconds())
			growth[i] = max(growth[i], grew)
		}
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	direct := med(rates[0])
	name := fmt.Sprintf("blob GET, %d MiB", r.o.blobMiB)
	figs := []figure{
		{Name: name + ", pass-through", Value: med(rates[1]), Unit: "MiB/s", Anchor: "distribution direct", AnchorValue: direct, Min: 0.9},
		{Name: name + ", content cache cold", Value: med(rates[2]), Unit: "MiB/s", Anchor: "distribution direct", AnchorValue: direct},
		{Name: name + ", content cache hit", Value: med(rates[3]), Unit: "MiB/s", Anchor: "distribution direct", AnchorValue: direct, Min: 1.0},
	}
	for i, what := range []string{"direct", "pass-through", "content cache cold", "content cache hit"} {
		figs = append(figs, figure{Name: name + ", peak RSS growth, " + what, Value: float64(growth[i]) / (1 << 20), Unit: "MiB"})
	}
	return figs, nil
}

// blobRounds are the interleaved rounds of the blob figures.
const blobRounds = 5
