package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gorilla/mux"

	"github.com/manifold-proxy/manifold/upstream"
)

// Mirror mode. A container runtime configured to use the proxy as the
// mirror of a registry keeps the image's own name: containerd
// (hosts.toml) asks for /v2/org/app/manifests/1.4?ns=ghcr.io, dockerd
// (registry-mirrors) for a Docker Hub name without ns, podman/CRI-O
// (registries.conf) for the name under the mirror's location. A request
// with ns is served by the upstream that mirrors that registry, under the
// name as that registry spells it; everything after the mapping —
// synthesis, policies, access rules (on target.canonical), caching — is
// the same as for the proxy's own names. An ns no upstream mirrors is
// answered 404 NAME_UNKNOWN at once: containerd then tries its next host,
// and no upstream's content is ever served as another registry's.

// anyRegistry in Upstream.MirrorOf mirrors every registry.
const anyRegistry = "*"

// mirrors maps a registry to the upstream that serves its mirror
// requests: the one that lists it, else one whose own registry it is (the
// default upstream first, then in the order of Options.Upstreams), else
// the one that lists "*".
type mirrors struct {
	listed, own map[string]*up
	any         *up
}

// newMirrors reads the MirrorOf lists of the upstreams (ups[i] is
// upstreams[i]).
func newMirrors(upstreams []Upstream, ups []*up) (mirrors, error) {
	m := mirrors{listed: map[string]*up{}, own: map[string]*up{}}
	for i, u := range upstreams {
		for _, entry := range u.MirrorOf {
			reg := entry
			if entry != anyRegistry {
				var err error
				if reg, err = upstream.ParseRegistry(entry); err != nil {
					return m, fmt.Errorf("proxy: upstream %q: mirrorOf: %w", ups[i].prefix, err)
				}
			}
			if other := m.lookupListed(reg); other != nil {
				return m, fmt.Errorf("proxy: upstreams %q and %q both mirror %s", other.prefix, ups[i].prefix, reg)
			}
			if reg == anyRegistry {
				m.any = ups[i]
			} else {
				m.listed[reg] = ups[i]
			}
			ups[i].hub = ups[i].hub || reg == upstream.DockerHub
		}
	}
	for pass := range 2 { // the default upstream first
		for _, u := range ups {
			reg := upstream.CanonicalRegistry(u.client.Host())
			if (pass == 0) == (u.prefix == "") && m.own[reg] == nil {
				m.own[reg] = u
			}
		}
	}
	return m, nil
}

func (m mirrors) lookupListed(reg string) *up {
	if reg == anyRegistry {
		return m.any
	}
	return m.listed[reg]
}

// lookup is the upstream that mirrors registry reg (canonical), or nil.
func (m mirrors) lookup(reg string) *up {
	if u := m.listed[reg]; u != nil {
		return u
	}
	if u := m.own[reg]; u != nil {
		return u
	}
	return m.any
}

// requestTarget maps the repository of r: a name of the registry its ns
// parameter names, or the proxy's own name without one — or with an ns
// that names the proxy itself (a hosts.toml that lists the proxy as a
// pull-only host of its own name). ns is removed from the request, so the
// upstream is asked the same way however the client came.
func (p *Proxy) requestTarget(r *http.Request) (target, *http.Request, error) {
	name := mux.Vars(r)["name"]
	rest, ns, found := cutNS(r.URL.RawQuery)
	if !found {
		t, err := p.target(name, "")
		return t, r, err
	}
	u := *r.URL
	u.RawQuery = rest
	r = r.WithContext(r.Context())
	r.URL = &u
	if upstream.CanonicalRegistry(ns) == upstream.CanonicalRegistry(r.Host) {
		ns = ""
	}
	t, err := p.target(name, ns)
	return t, r, err
}

// cutNS removes the ns parameters from a raw query, leaving the others as
// they were written (upload state tokens are passed on byte for byte), and
// returns the first ns value.
func cutNS(raw string) (rest, ns string, found bool) {
	if !strings.Contains(raw, "ns=") {
		return raw, "", false
	}
	var kept []string
	for _, part := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != "ns" {
			kept = append(kept, part)
			continue
		}
		if !found {
			ns, _ = url.QueryUnescape(v)
			found = true
		}
	}
	return strings.Join(kept, "&"), ns, found
}

// mirrorTarget maps name, a repository of registry ns, to the upstream
// that mirrors ns, where Docker Hub's names are spelled as Docker Hub
// spells them (nginx is library/nginx).
func (p *Proxy) mirrorTarget(name, ns string) (target, error) {
	reg, err := upstream.ParseRegistry(ns)
	if err != nil {
		return target{ns: ns}, apiErr(errcode.ErrorCodeNameUnknown, "ns=%q is not a registry name, and this proxy mirrors none by that name", ns)
	}
	u := p.mirrors.lookup(reg)
	if u == nil {
		return target{ns: reg}, apiErr(errcode.ErrorCodeNameUnknown, "no upstream of this proxy mirrors %s (ns=%s): pull %s/%s from %s itself", reg, ns, reg, name, reg)
	}
	repo := name
	if reg == upstream.DockerHub {
		repo = upstream.LibraryPath(name)
	}
	return target{up: u, name: name, repo: repo, ns: reg}, nil
}
