package proxy

import (
	"context"
	"net/http"

	"github.com/manifold-proxy/manifold/upstream"
)

// catalog serves GET /v2/_catalog: the repositories of every upstream
// (all their pages), with each upstream's prefix, sorted and paginated
// with n, last and Link. An upstream without a catalog (Docker Hub) is
// left out; if no upstream has one, the first one's error is returned.
func (p *Proxy) catalog(w http.ResponseWriter, r *http.Request, _ target) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	list, err := p.Repositories(r.Context(), userOf(r))
	if err != nil {
		return err
	}
	return writeJSON(w, r, map[string][]string{"repositories": paginate(w, "/v2/_catalog", list, n, last)})
}

// Repositories lists the repositories user ("" when anonymous) may read,
// as clients name them: every upstream's catalog (cached for the TTL),
// each under its prefix, unsorted. An upstream without a catalog (Docker
// Hub) is left out; if no upstream has one, the first one's error is
// returned.
func (p *Proxy) Repositories(ctx context.Context, user string) ([]string, error) {
	var list []string
	var firstErr error
	answered := false
	for _, u := range p.ups {
		repos, err := u.cache.Catalog(ctx)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if upstream.IsDefinitive(err) {
				continue
			}
			return nil, err
		}
		answered = true
		for _, repo := range repos {
			if u.prefix != "" {
				repo = u.prefix + "/" + repo
			}
			if p.mayRead(user, repo) {
				list = append(list, repo)
			}
		}
	}
	if !answered && firstErr != nil {
		return nil, firstErr
	}
	return list, nil
}
