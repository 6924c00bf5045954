package proxy

import (
	"net/http"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/upstream"
)

// What other front-ends of the same proxy (the status page, package ui)
// need: the repository a name maps to, with the very cache, resolver and
// rule the registry API uses, and the same authorization.

// RepoView is one repository as the proxy sees it.
type RepoView struct {
	// Name is the repository as clients name it; Canonical the name rules
	// and policies match; Repository its path on the upstream.
	Name, Canonical, Repository string
	Client                      *upstream.Client
	Cache                       *resolve.Cache
	Resolver                    *resolve.Resolver
	// Rule is the bare-tag rule in force; Policies all of them (what
	// migrate.Options takes).
	Rule     index.Rule
	Policies index.Rules
	Grammar  index.Grammar
	// MaxManifestBytes is the proxy's manifest limit.
	MaxManifestBytes int64
}

// Repo maps a repository name as clients give it (NAME_INVALID and
// NAME_UNKNOWN errors as the registry API gives them).
func (p *Proxy) Repo(name string) (RepoView, error) {
	t, err := p.target(name, "")
	if err != nil {
		return RepoView{}, err
	}
	return RepoView{Name: t.name, Canonical: t.canonical(), Repository: t.repo, Client: t.up.client,
		Cache: t.up.cache, Resolver: t.up.resolver, Rule: p.rule(t), Policies: p.o.Policies,
		Grammar: p.o.Grammar, MaxManifestBytes: p.o.MaxManifestBytes}, nil
}

// Authorize checks r against the proxy's client authentication and the
// read rules of repo (a canonical name; "" for a request about no one
// repository), answering a challenge on w when credentials are needed. It
// returns the user ("" when anonymous).
func (p *Proxy) Authorize(w http.ResponseWriter, r *http.Request, repo string) (string, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		r = r.Clone(r.Context())
		r.Method = http.MethodGet // a read, whatever the method
	}
	return p.authorize(w, r, repo)
}

// MayRead reports whether user ("" when anonymous) may read repo (a
// canonical name).
func (p *Proxy) MayRead(user, repo string) bool { return p.mayRead(user, repo) }

// WriteError writes err as the registry API writes errors: an OCI error
// envelope with its status.
func (p *Proxy) WriteError(w http.ResponseWriter, r *http.Request, err error) { writeError(w, r, err) }
