package flight_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/internal/flight"
)

func TestShared(t *testing.T) {
	t.Parallel()
	var g flight.Group[int]
	var calls atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			v, err := g.Do(context.Background(), "k", func(context.Context) (int, error) {
				calls.Add(1)
				<-release
				return 42, nil
			})
			if v != 42 || err != nil {
				t.Errorf("Do = %d, %v", v, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("%d calls, want 1", calls.Load())
	}
}

// TestCancelledWhenAbandoned: the call outlives one caller that leaves,
// and is cancelled when the last one leaves.
func TestCancelledWhenAbandoned(t *testing.T) {
	t.Parallel()
	var g flight.Group[int]
	started, cancelled := make(chan struct{}), make(chan struct{})
	fn := func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return 0, ctx.Err()
	}
	c1, cancel1 := context.WithCancel(context.Background())
	c2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := g.Do(c1, "k", fn); errs <- err }()
	<-started
	go func() { _, err := g.Do(c2, "k", fn); errs <- err }()
	time.Sleep(10 * time.Millisecond)
	cancel1()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v", err)
	}
	select {
	case <-cancelled:
		t.Fatal("the call was cancelled while a caller still waited")
	case <-time.After(20 * time.Millisecond):
	}
	cancel2()
	<-errs
	select {
	case <-cancelled:
	case <-time.After(time.Second):
		t.Fatal("the abandoned call was not cancelled")
	}
	// A new caller starts afresh.
	v, err := g.Do(context.Background(), "k", func(context.Context) (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Errorf("after abandonment: %d %v", v, err)
	}
}
