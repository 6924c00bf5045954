package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// Defaults of Retry.
const (
	DefaultRetryAttempts = 3
	DefaultRetryBackoff  = 200 * time.Millisecond
	DefaultRetryMaxWait  = 5 * time.Second
)

// Retry decides how requests are retried.
type Retry struct {
	// Attempts in all, including the first. Default DefaultRetryAttempts.
	Attempts int
	// Backoff before the second attempt; doubled each time. Default
	// DefaultRetryBackoff.
	Backoff time.Duration
	// MaxWait caps a Retry-After wait; longer waits are not retried.
	// Default DefaultRetryMaxWait.
	MaxWait time.Duration
	// Timeout bounds the wait for an answer to a GET or HEAD — the
	// response headers, over every attempt and the waits between them —
	// so a hanging upstream is an error after Timeout, never a hang (a body
	// being streamed is not cut). Default DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is Retry.Timeout's default: 30 s.
const DefaultTimeout = 30 * time.Second

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = DefaultRetryAttempts
	}
	if r.Backoff <= 0 {
		r.Backoff = DefaultRetryBackoff
	}
	if r.MaxWait <= 0 {
		r.MaxWait = DefaultRetryMaxWait
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
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
	deadline := time.Now().Add(t.r.Timeout)
	for attempt := 1; ; attempt++ {
		resp, err := t.attempt(req, time.Until(deadline))
		if attempt >= t.r.Attempts || req.Context().Err() != nil || time.Now().Add(wait).After(deadline) {
			return resp, err
		}
		switch {
		case err != nil:
			if !transient(err) {
				return resp, err
			}
		case retryable(resp.StatusCode):
			if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
				if d > t.r.MaxWait || time.Now().Add(d).After(deadline) {
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

// attempt sends req once and waits at most limit for the response headers.
// The body, once there, is not bound by limit.
func (t *retryTransport) attempt(req *http.Request, limit time.Duration) (*http.Response, error) {
	if limit <= 0 {
		return nil, &TimeoutError{After: t.r.Timeout}
	}
	ctx, cancel := context.WithCancel(req.Context())
	timer := time.AfterFunc(limit, cancel)
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() && req.Context().Err() == nil {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, &TimeoutError{After: t.r.Timeout}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// TimeoutError is an upstream that gave no answer within Retry.Timeout.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("no answer from the upstream within %s", e.After)
}

// Timeout marks it as a timeout (net.Error).
func (e *TimeoutError) Timeout() bool { return true }

// Temporary is part of net.Error.
func (e *TimeoutError) Temporary() bool { return true }

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
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
