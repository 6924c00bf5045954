// Package sharedcache is the cache manifold's replicas share: Redis (a
// single server, a cluster, or a sentinel-managed primary, as go-redis'
// universal client reaches them). It holds what expires — tag lists and
// tag → digest answers, each stored with the time it was fetched so that
// every replica's TTL runs from the same instant — and the fleet-wide locks
// that let one replica fetch an answer for all. Content (blobs, manifests,
// synthesized indexes) lives in the storage backend, not here.
//
// It implements resolve.Shared. Every call is bounded by short timeouts:
// a slow or dead Redis is a failure the caller answers without (its local
// cache and the upstream), never a hang.
package sharedcache

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	// DefaultDialTimeout bounds connecting to Redis.
	DefaultDialTimeout = time.Second
	// DefaultTimeout bounds one command.
	DefaultTimeout = 500 * time.Millisecond
)

// Options configure New, as distribution configures its Redis: one address
// is a single server, several a cluster, MasterName a sentinel setup.
type Options struct {
	// Addrs are host:port addresses. Required.
	Addrs []string
	// DB selects the database (single server and sentinel). Default 0.
	DB int
	// Username and Password authenticate (Redis 6 ACLs, or the password
	// alone). Default: none.
	Username, Password string
	// MasterName is the sentinel primary's name; the Addrs are then
	// sentinels. Default "": no sentinel.
	MasterName string
	// TLS, when set, is used to connect. Default: plain TCP.
	TLS *tls.Config
	// DialTimeout and Timeout bound connecting and each command. Defaults
	// DefaultDialTimeout and DefaultTimeout.
	DialTimeout, Timeout time.Duration
}

// Redis is a resolve.Shared on Redis.
type Redis struct {
	c       redis.UniversalClient
	timeout time.Duration
}

// New connects lazily (no command is sent until the first use).
func New(o Options) (*Redis, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: o.Addrs, DB: o.DB, Username: o.Username, Password: o.Password, MasterName: o.MasterName,
		TLSConfig: o.TLS, DialTimeout: o.DialTimeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		// A dead Redis must cost little: no retries here, the caller
		// backs off from it.
		MaxRetries: -1,
	})
	return &Redis{c: c, timeout: o.Timeout}, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.c.Ping(ctx).Err()
}

// Get implements resolve.Shared.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	b, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis get: %w", err)
	}
	return b, true, nil
}

// Set implements resolve.Shared.
func (r *Redis) Set(ctx context.Context, key string, b []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Set(ctx, key, b, ttl).Err(); err != nil {
		return fmt.Errorf("redis set: %w", err)
	}
	return nil
}

// Incr implements resolve.Shared.
func (r *Redis) Incr(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Incr(ctx, key).Err(); err != nil {
		return fmt.Errorf("redis incr: %w", err)
	}
	return nil
}

// unlockScript deletes the lock only if this holder still has it.
var unlockScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)

// Lock implements resolve.Shared: SET NX with a random token and an expiry,
// released only by its holder.
func (r *Redis) Lock(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, false, err
	}
	token := hex.EncodeToString(tok)
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ok, err := r.c.SetNX(cctx, key, token, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redis lock: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		defer cancel()
		_ = unlockScript.Run(uctx, r.c, []string{key}, token).Err()
	}, true, nil
}

// Publish implements resolve.Shared.
func (r *Redis) Publish(ctx context.Context, channel, msg string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Publish(ctx, channel, msg).Err(); err != nil {
		return fmt.Errorf("redis publish: %w", err)
	}
	return nil
}

// Subscribe implements resolve.Shared. go-redis' subscription reconnects by
// itself after Redis comes back; messages sent meanwhile are lost, which
// the TTL covers.
func (r *Redis) Subscribe(channel string, fn func(msg string)) func() {
	ctx, cancel := context.WithCancel(context.Background())
	sub := r.c.Subscribe(ctx, channel)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				fn(m.Payload)
			}
		}
	}()
	return func() {
		cancel()
		_ = sub.Close()
		<-done
	}
}
