package proxy

import (
	"errors"
	"net/http"
	"path"
	"slices"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
)

// Access controls who may use the proxy.
type Access struct {
	// Controller authenticates requests: distribution's access
	// controllers (auth.GetAccessController("htpasswd", ...)). Required.
	Controller auth.AccessController
	// AnonymousRead lets requests without credentials pull. Default false.
	AnonymousRead bool
	// Rules restrict authenticated users per repository; the first rule
	// whose pattern matches the repository decides. No match: every
	// authenticated user may read and write.
	Rules []AccessRule
}

// AccessRule names who may read (pull) and write (push, delete) the
// repositories matching Pattern (path.Match). "*" in a list is any
// authenticated user; "anonymous" is a request without credentials (with
// Access.AnonymousRead).
type AccessRule struct {
	Pattern     string
	Read, Write []string
}

// Anonymous is the user name of requests without credentials in rules.
const Anonymous = "anonymous"

// Validate checks the rule patterns.
func (a *Access) Validate() error {
	if a.Controller == nil {
		return errors.New("access: no controller")
	}
	for _, r := range a.Rules {
		if _, err := path.Match(r.Pattern, ""); err != nil {
			return err
		}
	}
	return nil
}

// allowed reports whether user ("" for an anonymous request) may do
// action (pull, push or delete) on repo.
func (a *Access) allowed(user, repo, action string) bool {
	for _, r := range a.Rules {
		if ok, _ := path.Match(r.Pattern, repo); !ok {
			continue
		}
		list := r.Read
		if action != "pull" {
			list = r.Write
		}
		if user == "" {
			return slices.Contains(list, Anonymous)
		}
		return slices.Contains(list, "*") || slices.Contains(list, user)
	}
	// No rule: every authenticated user may do anything; anonymous
	// requests only read, and only with AnonymousRead.
	return user != "" || (action == "pull" && a.AnonymousRead)
}

// action is what a request does to a repository, in token-scope words.
func action(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return "pull"
	case http.MethodDelete:
		return "delete"
	}
	return "push"
}

// authorize checks a request against Options.Access. repo is "" for
// requests not about one repository (/v2/, the catalog).
func (p *Proxy) authorize(w http.ResponseWriter, r *http.Request, repo string) (string, error) {
	a := p.o.Access
	if a == nil {
		return "", nil
	}
	act := action(r)
	if a.AnonymousRead && act == "pull" && r.Header.Get("Authorization") == "" && (repo == "" || a.allowed("", repo, act)) {
		return "", nil
	}
	records := []auth.Access{{Resource: auth.Resource{Type: "registry", Name: "catalog"}, Action: "*"}}
	switch {
	case repo != "":
		records = []auth.Access{{Resource: auth.Resource{Type: "repository", Name: repo}, Action: act}}
	case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
		records = nil
	}
	return p.check(w, r, records, repo, act)
}

// check authenticates r for records and applies the rules to repo/act.
func (p *Proxy) check(w http.ResponseWriter, r *http.Request, records []auth.Access, repo, act string) (string, error) {
	a := p.o.Access
	grant, err := a.Controller.Authorized(r, records...)
	if err != nil {
		var ch auth.Challenge
		if errors.As(err, &ch) {
			ch.SetHeaders(r, w)
			return "", errcode.ErrorCodeUnauthorized.WithMessage("authentication required")
		}
		return "", err
	}
	user := grant.User.Name
	if repo != "" && !a.allowed(user, repo, act) {
		return user, errcode.ErrorCodeDenied.WithMessage(user + " may not " + act + " " + repo)
	}
	return user, nil
}

// mayMountFrom reports whether the request may read repository from, the
// source of a cross-repository mount: a mount must not reveal what a pull
// would refuse.
func (p *Proxy) mayMountFrom(r *http.Request, from string) bool {
	if p.o.Access == nil {
		return true
	}
	if p.o.Access.AnonymousRead && r.Header.Get("Authorization") == "" {
		return p.o.Access.allowed("", from, "pull")
	}
	_, err := p.check(discardWriter{}, r, []auth.Access{{Resource: auth.Resource{Type: "repository", Name: from}, Action: "pull"}}, from, "pull")
	return err == nil
}

// discardWriter is a ResponseWriter for checks whose challenge headers
// are not sent.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

// mayRead filters the catalog for user ("" when anonymous).
func (p *Proxy) mayRead(user, repo string) bool {
	return p.o.Access == nil || p.o.Access.allowed(user, repo, "pull")
}
