package flight

import (
	"context"
	"sync"
)

// Group holds the calls in flight. The zero Group is ready to use.
type Group[V any] struct {
	mu sync.Mutex
	m  map[string]*call[V]
}

type call[V any] struct {
	done    chan struct{}
	v       V
	err     error
	waiters int
	cancel  context.CancelFunc
}

// Do returns the result of fn for key, calling it unless a call for key is
// in flight, in which case it waits for that one. fn's context carries
// ctx's values but not its cancellation; it is cancelled once every caller
// of the call has returned because its own context ended. Do returns
// ctx.Err() when ctx ends first.
func (g *Group[V]) Do(ctx context.Context, key string, fn func(context.Context) (V, error)) (V, error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]*call[V]{}
	}
	c, ok := g.m[key]
	if !ok {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call[V]{done: make(chan struct{}), cancel: cancel}
		g.m[key] = c
		go g.run(fctx, key, c, fn)
	}
	c.waiters++
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
		g.leave(key, c)
		var zero V
		return zero, ctx.Err()
	}
}

func (g *Group[V]) run(ctx context.Context, key string, c *call[V], fn func(context.Context) (V, error)) {
	defer c.cancel()
	c.v, c.err = fn(ctx)
	g.mu.Lock()
	if g.m[key] == c {
		delete(g.m, key)
	}
	g.mu.Unlock()
	close(c.done)
}

// leave drops a waiter; the last one cancels the call and forgets it, so
// that a later caller starts afresh instead of joining a cancelled call.
func (g *Group[V]) leave(key string, c *call[V]) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.waiters--
	if c.waiters == 0 {
		c.cancel()
		if g.m[key] == c {
			delete(g.m, key)
		}
	}
}

// InFlight is the number of calls running (for metrics and tests).
func (g *Group[V]) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}
