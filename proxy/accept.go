package proxy

import (
	"mime"
	"strconv"
	"strings"
)

// acceptRange is one media range of an Accept header with its q-value.
type acceptRange struct {
	typ, sub string // "*" for wildcards
	q        float64
}

// Accept is a parsed set of Accept header values. Clients send them either
// as one comma-joined header (containerd, crane) or as several header lines
// in any order (dockerd); both parse the same.
type Accept struct {
	ranges []acceptRange
	// any is true when no Accept header was sent: everything is acceptable.
	any bool
}

// ParseAccept parses every Accept header value. Malformed ranges are
// skipped, as RFC 9110 lets a server do; an empty result (all malformed) is
// treated like no header at all.
func ParseAccept(values []string) Accept {
	var a Accept
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			mt, params, err := mime.ParseMediaType(part)
			if err != nil {
				continue
			}
			typ, sub, ok := strings.Cut(mt, "/")
			if !ok || typ == "" || sub == "" || (typ == "*" && sub != "*") {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil || f < 0 || f > 1 {
					continue
				}
				q = f
			}
			a.ranges = append(a.ranges, acceptRange{typ: typ, sub: sub, q: q})
		}
	}
	a.any = len(a.ranges) == 0
	return a
}

// Allows reports whether mediaType is acceptable: the most specific
// matching range decides (exact type, then type/*, then */*), and q=0 means
// "not acceptable".
func (a Accept) Allows(mediaType string) bool {
	if a.any {
		return true
	}
	typ, sub, _ := strings.Cut(strings.ToLower(mediaType), "/")
	best, q := -1, 0.0
	for _, r := range a.ranges {
		spec := -1
		switch {
		case r.typ == typ && r.sub == sub:
			spec = 2
		case r.typ == typ && r.sub == "*":
			spec = 1
		case r.typ == "*":
			spec = 0
		}
		if spec > best || (spec == best && spec >= 0 && r.q > q) {
			best, q = spec, r.q
		}
	}
	return best >= 0 && q > 0
}

// Explicit reports whether mediaType is named exactly (not via a wildcard)
// with q > 0.
func (a Accept) Explicit(mediaType string) bool {
	typ, sub, _ := strings.Cut(strings.ToLower(mediaType), "/")
	for _, r := range a.ranges {
		if r.typ == typ && r.sub == sub && r.q > 0 {
			return true
		}
	}
	return false
}
