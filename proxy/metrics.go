package proxy

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/manifold-proxy/manifold/content"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	upstream *prometheus.CounterVec
	served   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, ups []*up) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_http_requests_total", Help: "Requests served, by route, method and status.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "manifold_http_request_duration_seconds", Help: "Time to serve a request, by route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"route"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_upstream_passthrough_total", Help: "Requests passed through to upstreams, by method and status class.",
		}, []string{"method", "class"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_index_served_total", Help: "Synthesized indexes served, by how: tag, digest (from the store), recomputed, default-platform child.",
		}, []string{"how"}),
	}
	cs := []prometheus.Collector{m.requests, m.duration, m.upstream, m.served}
	for _, u := range ups {
		// One registry may sit under several prefixes (say, with other
		// credentials): the prefix tells their counters apart.
		labels := prometheus.Labels{"upstream": u.client.Host(), "prefix": u.prefix}
		counter := func(name, help string, v *atomic.Int64) { cs = append(cs, counterFunc(name, help, labels, v)) }
		counter("manifold_cache_hits_total", "Cache answers within TTL.", &u.cache.Stats.Hits)
		counter("manifold_cache_misses_total", "Cache misses (upstream fetch needed).", &u.cache.Stats.Misses)
		counter("manifold_cache_stale_total", "Stale answers served while revalidating.", &u.cache.Stats.Stale)
		counter("manifold_cache_stale_if_error_total", "Stale answers served because upstream failed.", &u.cache.Stats.StaleIfError)
		counter("manifold_shared_cache_hits_total", "Answers another replica fetched, read from the shared cache (Redis).", &u.cache.SharedStats.Hits)
		counter("manifold_shared_cache_waits_total", "Fetches left to the replica holding the fleet-wide lock.", &u.cache.SharedStats.Waits)
		counter("manifold_shared_cache_errors_total", "Shared cache (Redis) failures; the local cache answered alone.", &u.cache.SharedStats.Errors)
		counter("manifold_upstream_fetches_total", "Upstream fetches made by the resolver cache.", &u.cache.Stats.Fetches)
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "manifold_upstream_in_flight", Help: "Requests open on the upstream (bounded by its in-flight limit).", ConstLabels: labels},
			func() float64 { return float64(u.client.InFlight()) }))
		counter("manifold_syntheses_total", "Index syntheses.", &u.resolver.Stats.Syntheses)
		counter("manifold_members_excluded_total", "Members excluded from synthesized indexes (platform mismatch, unreadable...).", &u.resolver.Stats.Excluded)
		counter("manifold_members_duplicate_total", "Duplicate members dropped by the duplicate rule.", &u.resolver.Stats.Duplicates)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// registerContent exposes the content cache's figures.
func registerContent(reg prometheus.Registerer, c *content.Cache, s *contentStats) error {
	var cs []prometheus.Collector
	counter := func(name, help string, labels prometheus.Labels, v *atomic.Int64) {
		cs = append(cs, counterFunc(name, help, labels, v))
	}
	gauge := func(name, help string, f func() float64) {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	for _, k := range []content.Kind{content.Blob, content.Manifest} {
		kind := prometheus.Labels{"kind": k.String()}
		counter("manifold_content_hits_total", "Blobs and manifests served from the content cache, by kind.", kind, &s.hits[k])
		counter("manifold_content_misses_total", "Blobs and manifests fetched from upstream into the content cache, by kind.", kind, &s.misses[k])
	}
	bytesHelp := "Bytes of content served from the store (source=store) and read from upstreams into it (source=upstream)."
	counter("manifold_content_bytes_total", bytesHelp, prometheus.Labels{"source": "store"}, &s.storeBytes)
	counter("manifold_content_bytes_total", bytesHelp, prometheus.Labels{"source": "upstream"}, &c.Stats.UpstreamBytes)
	counter("manifold_content_evictions_total", "Entries evicted from the content cache to stay under cache.content.maxBytes.", nil, &c.Stats.Evictions)
	counter("manifold_content_digest_mismatches_total", "Upstream content that did not match its digest (nothing stored).", nil, &c.Stats.DigestMismatches)
	cs = append(cs, storageErrors("content", "read", &s.readErrors, &c.Stats.ReadErrors), storageErrors("content", "write", &s.writeErrors, &c.Stats.WriteErrors))
	gauge("manifold_content_fills_in_flight", "Blob fills under way (one upstream fetch each, shared by every client waiting for the blob).",
		func() float64 { return float64(c.Stats.FillsInFlight.Load()) })
	gauge("manifold_content_stored_bytes", "Bytes held by the content cache.", func() float64 { return float64(c.Bytes()) })
	gauge("manifold_content_stored_entries", "Entries held by the content cache.", func() float64 { return float64(c.Len()) })
	gauge("manifold_content_max_bytes", "The content cache's bound (cache.content.maxBytes).", func() float64 { return float64(c.MaxBytes()) })
	for _, col := range cs {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	return nil
}

// Metrics serves the proxy's Prometheus metrics when it has its own
// registry (Options.Registerer unset); otherwise it is nil and the caller
// serves its registry.
func (p *Proxy) Metrics() http.Handler {
	if p.gather == nil {
		return nil
	}
	return promhttp.HandlerFor(p.gather, promhttp.HandlerOpts{})
}

// counterFunc is a counter read from the atomic counters vs (their sum).
func counterFunc(name, help string, labels prometheus.Labels, vs ...*atomic.Int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 {
		n := int64(0)
		for _, v := range vs {
			n += v.Load()
		}
		return float64(n)
	})
}

// storageErrors is manifold_storage_errors_total for one storage (content,
// store) and operation (read, write): the sum of the counters vs.
func storageErrors(storage, op string, vs ...*atomic.Int64) prometheus.Collector {
	return counterFunc("manifold_storage_errors_total",
		"Failed reads and writes of the storage behind the content cache and the index store (S3, filesystem…): the request was served from the upstream, or the answer not kept.",
		prometheus.Labels{"storage": storage, "op": op}, vs...)
}

// registerStoreErrors exposes the index store's failures, for every
// upstream's resolver.
func registerStoreErrors(reg prometheus.Registerer, p *Proxy) error {
	writes := make([]*atomic.Int64, len(p.ups))
	for i, u := range p.ups {
		writes[i] = &u.resolver.Stats.StoreWriteErrors
	}
	for _, c := range []prometheus.Collector{storageErrors("store", "read", &p.storeReadErrors), storageErrors("store", "write", writes...)} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
