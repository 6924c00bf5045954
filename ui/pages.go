package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/manifold-proxy/manifold/migrate"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/upstream"
)

// page is what every template gets.
type page struct {
	Title, Host string
	Pager       pager
}

type pager struct{ Prev, Next, Info string }

// repositories serves /ui/ and /ui/api/repositories: the repositories the
// user may read, filtered by q, a page after last.
func (u *UI) repositories(w http.ResponseWriter, r *http.Request) {
	user, err := u.o.Proxy.Authorize(w, r, "")
	if err != nil {
		u.o.Proxy.WriteError(w, r, err)
		return
	}
	all, err := u.o.Proxy.Repositories(r.Context(), user)
	if err != nil {
		u.o.Proxy.WriteError(w, r, err)
		return
	}
	q := strings.ToLower(r.URL.Query().Get("q"))
	var list []string
	for _, repo := range all {
		if strings.Contains(strings.ToLower(repo), q) {
			list = append(list, repo)
		}
	}
	sort.Strings(list)
	items, pg := paginate(r, list, u.o.RepoPageSize, "repositories")
	if isAPI(r) {
		writeJSON(w, pg, map[string][]string{"repositories": items})
		return
	}
	u.render(w, r, "repositories", struct {
		page
		Query        string
		Repositories []string
	}{page{Title: "Repositories", Host: r.Host, Pager: pg}, r.URL.Query().Get("q"), items})
}

// paginate returns the items after the request's last, at most n, and the
// links to the neighbouring pages.
func paginate(r *http.Request, items []string, n int, what string) ([]string, pager) {
	q := r.URL.Query()
	start := 0
	if last := q.Get("last"); last != "" {
		start, _ = slices.BinarySearch(items, last)
		if start < len(items) && items[start] == last {
			start++
		}
	}
	end := min(start+n, len(items))
	pg := pager{Info: fmt.Sprintf("%d–%d of %d %s", min(start+1, end), end, len(items), what)}
	link := func(last string) string {
		v := url.Values{}
		for k, vs := range q {
			if k != "last" {
				v[k] = vs
			}
		}
		if last != "" {
			v.Set("last", last)
		}
		return r.URL.Path + "?" + v.Encode()
	}
	if end < len(items) {
		pg.Next = link(items[end-1])
	}
	if start > 0 {
		prev := ""
		if p := start - n; p > 0 {
			prev = items[p-1]
		}
		pg.Prev = link(prev)
	}
	return items[start:end], pg
}

// view is one repository, authorized, or the error already written.
func (u *UI) view(w http.ResponseWriter, r *http.Request, name string) (proxy.RepoView, bool) {
	rv, err := u.o.Proxy.Repo(name)
	if err == nil {
		_, err = u.o.Proxy.Authorize(w, r, rv.Canonical)
	}
	if err != nil {
		u.o.Proxy.WriteError(w, r, err)
		return rv, false
	}
	return rv, true
}

// inspect is migrate's report of bases, through the proxy's own caches.
func (u *UI) inspect(r *http.Request, rv proxy.RepoView, bases ...string) (*migrate.Plan, error) {
	m, err := migrate.New(migrate.Options{
		Client: rv.Client, Repository: rv.Repository, PolicyName: rv.Canonical, Policies: rv.Policies,
		Grammar: rv.Grammar, MaxManifestBytes: rv.MaxManifestBytes,
		Live: &migrate.Live{Cache: rv.Cache, Resolver: rv.Resolver},
	})
	if err != nil {
		return nil, err
	}
	return m.Inspect(r.Context(), bases...)
}

// repo serves one repository's matrix, a page of bare tags at a time.
func (u *UI) repo(w http.ResponseWriter, r *http.Request, name string) {
	rv, ok := u.view(w, r, name)
	if !ok {
		return
	}
	tags, err := rv.Cache.Tags(r.Context(), rv.Repository)
	if err != nil {
		u.o.Proxy.WriteError(w, r, upstreamErr(err, name))
		return
	}
	groups := rv.Grammar.Group(tags)
	bases := make([]string, 0, len(groups))
	for b := range groups {
		bases = append(bases, b)
	}
	sort.Strings(bases)
	shown, pg := paginate(r, bases, u.o.PageSize, "bare tags")
	report := &migrate.Plan{Repository: rv.Client.Host() + "/" + rv.Repository, Policy: string(rv.Rule.Policy), Groups: []migrate.BasePlan{}, Platforms: []string{}}
	if len(shown) > 0 {
		if report, err = u.inspect(r, rv, shown...); err != nil {
			u.o.Proxy.WriteError(w, r, err)
			return
		}
	}
	if isAPI(r) {
		writeJSON(w, pg, report)
		return
	}
	u.render(w, r, "repository", repoPage(r, rv, report, pg))
}

// tag serves one bare tag: what it serves, its members, the index bytes.
func (u *UI) tag(w http.ResponseWriter, r *http.Request, name, tag string) {
	rv, ok := u.view(w, r, name)
	if !ok {
		return
	}
	tags, err := rv.Cache.Tags(r.Context(), rv.Repository)
	if err != nil {
		u.o.Proxy.WriteError(w, r, upstreamErr(err, name))
		return
	}
	if len(rv.Grammar.Members(tags, tag)) == 0 && !slices.Contains(tags, tag) {
		u.o.Proxy.WriteError(w, r, errcode.ErrorCodeManifestUnknown.WithMessage(name+" has no tag "+tag+" and no per-platform tags for it"))
		return
	}
	report, err := u.inspect(r, rv, tag)
	if err != nil {
		u.o.Proxy.WriteError(w, r, err)
		return
	}
	g := report.Groups[0]
	var raw []byte
	if res, err := rv.Resolver.Resolve(r.Context(), rv.Repository, tag, rv.Rule); err == nil && res.Outcome == resolve.Index {
		raw = res.Result.Bytes
	}
	if isAPI(r) {
		writeJSON(w, pager{}, struct {
			Repository string           `json:"repository"`
			Group      migrate.BasePlan `json:"group"`
			Index      json.RawMessage  `json:"index,omitempty"`
		}{report.Repository, g, raw})
		return
	}
	var indented bytes.Buffer
	_ = json.Indent(&indented, raw, "", "  ")
	u.render(w, r, "tag", struct {
		page
		Name, Tag, RepoURL string
		Group              migrate.BasePlan
		Lines              []string
		JSON, Indented     string
	}{page{Title: name + ":" + tag, Host: r.Host}, name, tag, repoURL(name), g, pullLines(r.Host, name, tag, g), string(raw), indented.String()})
}

// pullLines are the lines to paste: a pull of the bare tag, then each
// listed platform with docker and crane.
func pullLines(host, name, tag string, g migrate.BasePlan) []string {
	ref := host + "/" + name + ":" + tag
	lines := []string{"docker pull " + ref}
	seen := map[string]bool{}
	for _, m := range g.Members {
		if !m.Included || m.Platform == "" || seen[m.Platform] {
			continue
		}
		seen[m.Platform] = true
		lines = append(lines, "docker pull --platform "+m.Platform+" "+ref, "crane digest --platform "+m.Platform+" "+ref)
	}
	return lines
}

// render writes a page, or a 500 naming the failure.
func (u *UI) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var b bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&b, "layout", data); err != nil {
		u.o.Logger.Error("ui: rendering", "page", name, "error", err)
		u.o.Proxy.WriteError(w, r, errcode.ErrorCodeUnknown.WithMessage("the status page failed to render"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

func writeJSON(w http.ResponseWriter, pg pager, v any) {
	if pg.Next != "" {
		w.Header().Set("Link", "<"+pg.Next+`>; rel="next"`)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// upstreamErr says that a repository the upstream does not know is
// unknown, as the registry API would.
func upstreamErr(err error, name string) error {
	if upstream.IsNotFound(err) {
		return errcode.ErrorCodeNameUnknown.WithMessage("repository " + name + " is not known to the upstream")
	}
	return err
}

// platformOrder sorts platform strings as index entries are sorted.
func platformOrder(ps []string) []string {
	out := slices.Clone(ps)
	sort.SliceStable(out, func(i, j int) bool {
		a, errA := platform.Parse(out[i])
		b, errB := platform.Parse(out[j])
		if errA != nil || errB != nil {
			return out[i] < out[j]
		}
		return platform.Less(a, b)
	})
	return out
}

// age says how old the cached tag list is.
func age(c *resolve.Cache, repo string) string {
	at, ok := c.TagsFetched(repo)
	if !ok {
		return "not cached"
	}
	return "fetched " + time.Since(at).Round(time.Second).String() + " ago"
}
