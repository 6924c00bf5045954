package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/upstream"
)

// wireError is one entry of the OCI error envelope. Upstream codes are
// written verbatim, registered here or not.
type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// upstreamError is an error answer from an upstream, to be relayed with its
// status and codes.
type upstreamError struct {
	status int
	errs   []wireError
	cause  error
}

func (e *upstreamError) Error() string { return fmt.Sprintf("upstream %d: %v", e.status, e.cause) }
func (e *upstreamError) Unwrap() error { return e.cause }

// defaultRetryAfter is the Retry-After (seconds) of a 429 or 5xx that has
// none: clients back off instead of hammering a failing upstream.
const defaultRetryAfter = "5"

// writeError writes err as an OCI error envelope (distribution spec
// "Error Codes"). Upstream answers keep their status and codes; network
// failures are 502 UNAVAILABLE; a group with no usable member is 404
// MANIFEST_UNKNOWN naming the excluded tags.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, errs := classify(err)
	for i := range errs {
		// Upstream URLs in messages may carry signatures or state tokens.
		errs[i].Message = upstream.Redact(errs[i].Message)
	}
	w.Header().Set("Content-Type", "application/json")
	if (status == http.StatusTooManyRequests || status >= 500) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", defaultRetryAfter)
	}
	body, _ := json.Marshal(map[string][]wireError{"errors": errs})
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func classify(err error) (int, []wireError) {
	var (
		ue         *upstreamError
		se         *statusError
		te         *transport.Error
		empty      *index.EmptyGroupError
		incomplete *index.IncompleteError
		ec         errcode.Error
		code       errcode.ErrorCode
	)
	switch {
	case errors.As(err, &ue):
		return ue.status, ue.errs
	case errors.As(err, &se):
		return se.status, []wireError{{Code: se.code.String(), Message: se.message}}
	case errors.As(err, &incomplete):
		var missing []string
		for _, p := range incomplete.Missing {
			missing = append(missing, platform.String(p))
		}
		return http.StatusNotFound, []wireError{{Code: errcode.ErrorCodeManifestUnknown.String(), Message: incomplete.Error(),
			Detail: map[string]any{"base": incomplete.Base, "missing": missing}}}
	case errors.As(err, &empty):
		detail := map[string]any{"base": empty.Base, "excluded": exclusionDetail(empty.Excluded)}
		return http.StatusNotFound, []wireError{{Code: errcode.ErrorCodeManifestUnknown.String(), Message: empty.Error(), Detail: detail}}
	case errors.As(err, &ec):
		return ec.Code.Descriptor().HTTPStatusCode, []wireError{{Code: ec.Code.String(), Message: ec.Message, Detail: ec.Detail}}
	case errors.As(err, &code):
		return code.Descriptor().HTTPStatusCode, []wireError{{Code: code.String(), Message: code.Message()}}
	case errors.As(err, &te):
		return fromTransport(te)
	case errors.Is(err, context.Canceled):
		// The client went away; the status is for the log only.
		return 499, []wireError{{Code: errcode.ErrorCodeUnavailable.String(), Message: "request canceled"}}
	}
	// No answer from upstream (refused, reset, timed out): a bad gateway.
	return http.StatusBadGateway, []wireError{{Code: errcode.ErrorCodeUnavailable.String(), Message: "upstream unavailable: " + err.Error()}}
}

func fromTransport(te *transport.Error) (int, []wireError) {
	var errs []wireError
	for _, d := range te.Errors {
		errs = append(errs, wireError{Code: string(d.Code), Message: d.Message, Detail: d.Detail})
	}
	status := te.StatusCode
	if len(errs) == 0 {
		code := errcode.ErrorCodeUnknown
		switch status {
		case http.StatusNotFound:
			code = errcode.ErrorCodeManifestUnknown
		case http.StatusUnauthorized:
			code = errcode.ErrorCodeUnauthorized
		case http.StatusForbidden:
			code = errcode.ErrorCodeDenied
		case http.StatusTooManyRequests:
			code = errcode.ErrorCodeTooManyRequests
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			code = errcode.ErrorCodeUnavailable
		}
		errs = []wireError{{Code: code.String(), Message: fmt.Sprintf("upstream answered %d", status)}}
	}
	// The proxy's own credentials were refused upstream: that is not the
	// client's to fix with a login to the proxy, so no 401 challenge.
	if status == http.StatusUnauthorized {
		status = http.StatusForbidden
		for i := range errs {
			errs[i].Message = "upstream refused the proxy's credentials: " + errs[i].Message
		}
	}
	return status, errs
}

func exclusionDetail(xs []index.Exclusion) []map[string]string {
	out := make([]map[string]string, len(xs))
	for i, x := range xs {
		out[i] = map[string]string{"tag": x.Tag, "reason": x.Reason}
	}
	return out
}

// statusError is an OCI error with a status of its own (the errcode
// registry fixes one status per code).
type statusError struct {
	status  int
	code    errcode.ErrorCode
	message string
}

func (e *statusError) Error() string { return e.message }

// apiErr is an errcode error with a message, for handlers.
func apiErr(code errcode.ErrorCode, format string, args ...any) error {
	return code.WithMessage(fmt.Sprintf(format, args...))
}
