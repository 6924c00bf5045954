package upstream

import (
	"errors"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The upstream error vocabulary. Every package that asks "what did the
// registry answer?" asks it here, of any error a Client (or a
// go-containerregistry call through its transport) returned.

// ErrTooLarge is wrapped by errors for manifests and blobs over the size
// limit a caller set: the registry answered, but the answer is refused.
var ErrTooLarge = errors.New("over the size limit")

// Status is the HTTP status of the registry's answer carried by err, or 0
// when err is not an HTTP answer (a network failure, a timeout). It reads
// go-containerregistry's *transport.Error and any error with a
// StatusCode() int method.
func Status(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) {
		return sc.StatusCode()
	}
	return 0
}

// IsNotFound reports whether the registry said the thing does not exist.
func IsNotFound(err error) bool { return Status(err) == http.StatusNotFound }

// IsDefinitive reports whether err is the registry's answer rather than a
// failure to get one: a 4xx other than 408 and 429 (not found, denied,
// invalid), or a refused size. Definitive answers may be cached like
// values; failures (network errors, timeouts, 5xx, 408, 429) may go away on
// a retry and are never cached.
func IsDefinitive(err error) bool {
	if errors.Is(err, ErrTooLarge) {
		return true
	}
	s := Status(err)
	return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
}
