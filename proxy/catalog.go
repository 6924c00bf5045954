package proxy

import (
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
	var list []string
	var firstErr error
	answered := false
	for _, u := range p.ups {
		repos, err := u.cache.Catalog(r.Context())
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if upstream.IsDefinitive(err) {
				continue
			}
			return err
		}
		answered = true
		for _, repo := range repos {
			if u.prefix != "" {
				repo = u.prefix + "/" + repo
			}
			if p.mayRead(userOf(r), repo) {
				list = append(list, repo)
			}
		}
	}
	if !answered && firstErr != nil {
		return firstErr
	}
	return writeJSON(w, r, map[string][]string{"repositories": paginate(w, "/v2/_catalog", list, n, last)})
}
