package upstream

import "regexp"

var (
	// urlQuery is the query of a URL in a message: presigned storage URLs
	// carry their signatures (X-Amz-Signature, sig=, Signature=) there, and
	// upload URLs their _state tokens.
	urlQuery = regexp.MustCompile(`(\b[a-z][a-z0-9+.-]*://[^\s"'<>?]*)\?[^\s"'<>]*`)
	// userinfo is user:password@ in a URL.
	userinfo = regexp.MustCompile(`((?:\b[a-z][a-z0-9+.-]*:)?//)[^\s"'<>/@]*@`)
	// stateParam is a _state token outside a URL (a logged query string).
	stateParam = regexp.MustCompile(`(\b_state=)[^&\s"']*`)
)

// Redact removes what must not reach a log line or a client's error body
// from a message: the query of every URL (signatures of presigned
// redirects, upload _state tokens), the user:password of every URL, and
// bare _state parameters.
func Redact(s string) string {
	s = urlQuery.ReplaceAllString(s, "$1?REDACTED")
	s = userinfo.ReplaceAllString(s, "${1}REDACTED@")
	return stateParam.ReplaceAllString(s, "${1}REDACTED")
}
