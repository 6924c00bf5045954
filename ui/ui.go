package ui

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/manifold-proxy/manifold/proxy"
)

// Defaults of Options.
const (
	// DefaultPageSize is how many bare tags a repository page shows.
	DefaultPageSize = 50
	// DefaultRepoPageSize is how many repositories a page lists.
	DefaultRepoPageSize = 200
)

// Options configure New.
type Options struct {
	// Proxy is the running proxy whose view the page shows. Required.
	Proxy *proxy.Proxy
	// PageSize is the bare tags per repository page. Default
	// DefaultPageSize.
	PageSize int
	// RepoPageSize is the repositories per page. Default
	// DefaultRepoPageSize.
	RepoPageSize int
	// Logger receives the errors of rendering. Default: silent.
	Logger *slog.Logger
}

//go:embed templates/*.html static/*
var files embed.FS

// UI serves /ui/.
type UI struct {
	o     Options
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New makes the status page's handler, to be mounted at /ui/.
func New(o Options) (*UI, error) {
	if o.Proxy == nil {
		return nil, errors.New("ui: no proxy")
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.RepoPageSize <= 0 {
		o.RepoPageSize = DefaultRepoPageSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	u := &UI{o: o, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{"short": short, "repoURL": repoURL}
	for _, page := range []string{"repositories", "repository", "tag"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/pager.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		u.pages[page] = t
	}
	static, _ := fs.Sub(files, "static")
	u.mux = http.NewServeMux()
	u.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	u.mux.HandleFunc("GET /ui/{$}", u.repositories)
	u.mux.HandleFunc("GET /ui/api/repositories", u.repositories)
	u.mux.HandleFunc("GET /ui/r/", u.repository)
	u.mux.HandleFunc("GET /ui/api/r/", u.repository)
	return u, nil
}

// ServeHTTP implements http.Handler. Only GET and HEAD: the page writes
// nothing.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		u.o.Proxy.WriteError(w, r, errcode.ErrorCodeUnsupported.WithMessage("the status page is read-only"))
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	u.mux.ServeHTTP(w, r)
}

// isAPI reports whether r asks for JSON (/ui/api/...).
func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/ui/api/") }

// repository routes /ui/r/<name> and /ui/r/<name>/-/<tag> (and their
// /ui/api/ forms): "-" is no repository path component, so it separates.
func (u *UI) repository(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/ui/r/")
	if isAPI(r) {
		rest = strings.TrimPrefix(r.URL.Path, "/ui/api/r/")
	}
	name, tag, isTag := strings.Cut(rest, "/-/")
	if isTag {
		u.tag(w, r, name, tag)
		return
	}
	u.repo(w, r, strings.TrimSuffix(name, "/"))
}

func repoURL(name string) string { return "/ui/r/" + pathEscape(name) }

func tagURL(name, tag string) string { return repoURL(name) + "/-/" + url.PathEscape(tag) }

// pathEscape escapes each component of a repository name.
func pathEscape(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// short is the first 12 hex digits of a digest.
func short(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok {
		d = hex
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}
