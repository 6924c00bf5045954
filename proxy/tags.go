package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/upstream"
)

// tags serves GET /v2/<name>/tags/list (distribution spec "Listing
// tags"): every upstream tag (all of upstream's pages) plus the bare tags
// that the proxy synthesizes, sorted, paginated with n, last and a Link
// header.
func (p *Proxy) tags(w http.ResponseWriter, r *http.Request, t target) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	all, err := t.up.cache.Tags(r.Context(), t.repo)
	if err != nil {
		if upstream.IsDefinitive(err) {
			// Upstream's own answer (NAME_UNKNOWN...).
			return p.forward(w, r, t, forwardOpts{path: "/v2/" + t.repo + "/tags/list", scopes: []string{upstream.Scope(t.repo, "pull")}})
		}
		return err
	}
	list := append([]string(nil), all...)
	if p.policy(t) != index.Off && !synthesisOff(r) {
		for base := range p.o.Grammar.Group(all) {
			list = append(list, base)
		}
	}
	page := paginate(w, "/v2/"+t.name+"/tags/list", list, n, last)
	return writeJSON(w, r, map[string]any{"name": t.name, "tags": page})
}

// pagination reads n and last; n = -1 means no limit.
func pagination(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	n := -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return 0, "", apiErr(errcode.ErrorCodePaginationNumberInvalid, "invalid n %q: want a non-negative integer", s)
		}
		n = v
	}
	return n, q.Get("last"), nil
}

// paginate sorts and dedupes list and returns its entries after last, at
// most n of them (n < 0: all), never nil. When more follow, it sets the Link
// header to path with the next page's query (distribution spec
// "Pagination").
func paginate(w http.ResponseWriter, path string, list []string, n int, last string) []string {
	slices.Sort(list)
	list = slices.Compact(list)
	if last != "" {
		i, found := slices.BinarySearch(list, last)
		if found {
			i++
		}
		list = list[i:]
	}
	if n >= 0 && n < len(list) {
		list = list[:n]
		if n > 0 {
			q := url.Values{"n": {strconv.Itoa(n)}, "last": {list[n-1]}}
			w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
		}
	}
	if list == nil {
		return []string{}
	}
	return list
}

func writeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}
