package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/resolve"
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
		if resolve.Definitive(err) {
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
	slices.Sort(list)
	list = slices.Compact(list)
	page, more := paginate(list, n, last)
	if more {
		q := url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}}
		w.Header().Set("Link", `</v2/`+t.name+`/tags/list?`+q.Encode()+`>; rel="next"`)
	}
	return writeJSON(w, r, map[string]any{"name": t.name, "tags": nonNil(page)})
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

// paginate returns the entries of sorted list after last, at most n of
// them (n < 0: all), and whether more follow.
func paginate(list []string, n int, last string) ([]string, bool) {
	if last != "" {
		i, found := slices.BinarySearch(list, last)
		if found {
			i++
		}
		list = list[i:]
	}
	if n < 0 || n >= len(list) {
		return list, false
	}
	return list[:n], n > 0
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
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
