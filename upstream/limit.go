package upstream

import (
	"io"
	"net/http"
	"sync"
)

// DefaultMaxInFlight is Options.MaxInFlight's default: the requests one
// Client has open on its upstream at once.
const DefaultMaxInFlight = 256

// limitTransport bounds the requests in flight: a request holds its slot
// until its response body is closed (a blob being streamed holds one), and
// one that cannot get a slot waits until its context ends.
type limitTransport struct {
	inner http.RoundTripper
	slots chan struct{}
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case t.slots <- struct{}{}:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	resp, err := t.inner.RoundTrip(req)
	if err != nil {
		<-t.slots
		return nil, err
	}
	resp.Body = &releaseOnClose{ReadCloser: resp.Body, release: func() { <-t.slots }}
	return resp, nil
}

// InFlight is the number of requests holding a slot.
func (t *limitTransport) InFlight() int { return len(t.slots) }

type releaseOnClose struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *releaseOnClose) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}
