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
// authenticated user.
type AccessRule struct {
	Pattern     string
	Read, Write []string
}

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

// allowed reports whether user may do action (pull or push) on repo.
func (a *Access) allowed(user, repo, action string) bool {
	for _, r := range a.Rules {
		if ok, _ := path.Match(r.Pattern, repo); !ok {
			continue
		}
		list := r.Read
		if action == "push" {
			list = r.Write
		}
		return slices.Contains(list, "*") || slices.Contains(list, user)
	}
	return true
}

// authorize checks a request against Options.Access. repo is "" for
// requests not about one repository (/v2/, the catalog).
func (p *Proxy) authorize(w http.ResponseWriter, r *http.Request, repo string) (string, error) {
	a := p.o.Access
	if a == nil {
		return "", nil
	}
	action := "pull"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		action = "push"
	}
	_, _, hasCreds := r.BasicAuth()
	if action == "pull" && a.AnonymousRead && !hasCreds && r.Header.Get("Authorization") == "" {
		return "", nil
	}
	var records []auth.Access
	if repo != "" {
		records = []auth.Access{{Resource: auth.Resource{Type: "repository", Name: repo}, Action: action}}
	}
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
	if repo != "" && !a.allowed(user, repo, action) {
		return user, errcode.ErrorCodeDenied.WithMessage(user + " may not " + action + " " + repo)
	}
	return user, nil
}

// mayRead filters the catalog for user.
func (p *Proxy) mayRead(user, repo string) bool {
	return p.o.Access == nil || p.o.Access.allowed(user, repo, "pull")
}
