package upstream

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// Retry decides how requests are retried.
type Retry struct {
	// Attempts in all, including the first. Default 3.
	Attempts int
	// Backoff before the second attempt; doubled each time. Default 200ms.
	Backoff time.Duration
	// MaxWait caps a Retry-After wait; longer waits are not retried.
	// Default 5s.
	MaxWait time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 3
	}
	if r.Backoff <= 0 {
		r.Backoff = 200 * time.Millisecond
	}
	if r.MaxWait <= 0 {
		r.MaxWait = 5 * time.Second
	}
	return r
}

type retryTransport struct {
	inner http.RoundTripper
	r     Retry
}

func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// RoundTrip retries idempotent requests without a body. A request with a
// body (uploads) is sent once: it cannot be replayed safely.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody != nil {
		// A replayable body (the proxy buffers small ones): send a fresh
		// copy each time. go-containerregistry resends the very same
		// request after renewing a token, and its body would be spent.
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) || (req.Body != nil && req.Body != http.NoBody) {
		return t.inner.RoundTrip(req)
	}
	wait := t.r.Backoff
	for attempt := 1; ; attempt++ {
		resp, err := t.inner.RoundTrip(req)
		if attempt >= t.r.Attempts || req.Context().Err() != nil {
			return resp, err
		}
		switch {
		case err != nil:
			if !transient(err) {
				return resp, err
			}
		case retryable(resp.StatusCode):
			if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
				if d > t.r.MaxWait {
					return resp, nil
				}
				wait = max(wait, d)
			}
			resp.Body.Close()
		default:
			return resp, nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
		wait *= 2
	}
}

// transient reports whether a network error may go away on its own:
// timeouts, refused or reset connections, connections closed mid-answer.
// TLS and protocol errors (an HTTPS request to a plain HTTP port) do not.
func transient(err error) bool {
	var ne net.Error
	return (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h string) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}
