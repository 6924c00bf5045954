package resolve

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/manifold-proxy/manifold/upstream"
)

// Shared is a cache that replicas share (sharedcache.Redis): what one
// replica fetched from the upstream, the others read, and one fetch per key
// at a time runs across the fleet. Its failures never fail a pull: the
// Cache then works on its own, as a single replica does.
type Shared interface {
	// Get returns what is stored under key; ok is false when nothing is.
	Get(ctx context.Context, key string) (b []byte, ok bool, err error)
	// Set stores b under key for ttl.
	Set(ctx context.Context, key string, b []byte, ttl time.Duration) error
	// Incr adds one to the counter under key.
	Incr(ctx context.Context, key string) error
	// Lock takes key's fleet-wide lock for at most ttl; ok is false when
	// another holder has it.
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), ok bool, err error)
	// Publish sends msg to every subscriber of channel (best effort).
	Publish(ctx context.Context, channel, msg string) error
	// Subscribe calls fn with each message of channel until stop is
	// called, reconnecting as needed.
	Subscribe(channel string, fn func(msg string)) (stop func())
}

// SharedStats count the shared cache's use; read them with atomic loads.
type SharedStats struct {
	// Hits are answers another replica fetched; Waits, fetches this
	// replica left to the one holding the lock; Errors, shared-cache
	// failures (the local cache answered alone).
	Hits, Waits, Errors atomic.Int64
}

// sharedEntry is an answer as stored in the shared cache: the value, or a
// definitive error (its status and message), and when it was fetched, so
// the TTL runs from the same instant on every replica.
type sharedEntry[V any] struct {
	At     int64  `json:"at"`
	V      V      `json:"v,omitempty"`
	Status int    `json:"status,omitempty"`
	Msg    string `json:"msg,omitempty"`
}

func encodeShared[V any](e *entry[V]) ([]byte, bool) {
	se := sharedEntry[V]{At: e.at.UnixNano(), V: e.v}
	if e.err != nil {
		status := upstream.Status(e.err)
		if status == 0 {
			return nil, false
		}
		se.Status, se.Msg = status, e.err.Error()
	}
	b, err := json.Marshal(se)
	return b, err == nil
}

func decodeShared[V any](b []byte) (*entry[V], bool) {
	var se sharedEntry[V]
	if json.Unmarshal(b, &se) != nil || se.At == 0 {
		return nil, false
	}
	e := &entry[V]{v: se.V, at: time.Unix(0, se.At)}
	if se.Status != 0 {
		e.err = &transport.Error{StatusCode: se.Status, Errors: []transport.Diagnostic{{Code: transport.UnknownErrorCode, Message: se.Msg}}}
	}
	return e, true
}

// sharedSpace is where one memo's answers live in the shared cache.
type sharedSpace struct {
	s      Shared
	prefix string // "manifold:<registry>:<kind>:"
	epoch  func(ctx context.Context, key string) (string, error)
	stats  *SharedStats
	log    *slog.Logger
	// down is when the shared cache last failed: it is skipped for a
	// while after, so a dead Redis costs each pull nothing.
	down atomic.Int64
}

// sharedBackoff is how long a failed shared cache is left alone.
const sharedBackoff = 5 * time.Second

func (sp *sharedSpace) usable() bool {
	return sp != nil && time.Since(time.Unix(0, sp.down.Load())) > sharedBackoff
}

// failed counts a failure of the shared cache and leaves it alone for
// sharedBackoff; the warning is written once per backoff (one caller wins
// the swap), as the shared cache is not asked again before. A call that
// ended because its caller left (ctx done) says nothing about Redis.
func (sp *sharedSpace) failed(ctx context.Context, err error) {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return
	}
	sp.stats.Errors.Add(1)
	now := time.Now().UnixNano()
	prev := sp.down.Load()
	if time.Duration(now-prev) > sharedBackoff && sp.down.CompareAndSwap(prev, now) {
		sp.log.Warn("shared cache failed: the local cache answers alone", "part", strings.TrimSuffix(sp.prefix, ":"), "retry_after", sharedBackoff, "error", err)
		return
	}
	sp.down.Store(now)
}

// key is where key lives: under the epoch of its repository, which an
// invalidation moves, so every replica forgets at once.
func (sp *sharedSpace) key(ctx context.Context, key string) (string, error) {
	epoch, err := sp.epoch(ctx, key)
	return sp.prefix + epoch + ":" + strings.ReplaceAll(key, "\x00", ":"), err
}

func epochKey(prefix, repo string) string { return prefix + "epoch:" + repo }

func parseEpoch(b []byte, ok bool) string {
	if !ok {
		return "0"
	}
	if _, err := strconv.ParseUint(string(b), 10, 64); err != nil {
		return "0"
	}
	return string(b)
}
