package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Bounds of a paginated listing (tags/list, _catalog). An upstream's Link
// headers are followed, never trusted: a Link that points back to a page
// already read, or to another host, ends the listing with an error, and so
// does a listing longer than these bounds.
const (
	// ListPageSize is the n asked for on each page.
	ListPageSize = 1000
	// MaxListPages bounds the pages of one listing.
	MaxListPages = 2000
	// MaxListEntries bounds the entries of one listing.
	MaxListEntries = 1_000_000
	// maxPageBytes bounds one page's body.
	maxPageBytes = 32 << 20
)

// ErrListTooLong is wrapped by the error of a listing over its bounds.
var ErrListTooLong = errors.New("listing over its bounds")

// Tags lists every tag of repo, following upstream pagination.
func (c *Client) Tags(ctx context.Context, repo string) ([]string, error) {
	return c.list(ctx, Scope(repo, "pull"), "/v2/"+repo+"/tags/list")
}

// Catalog lists every repository, following upstream pagination.
func (c *Client) Catalog(ctx context.Context) ([]string, error) {
	return c.list(ctx, "registry:catalog:*", "/v2/_catalog")
}

func (c *Client) list(ctx context.Context, scope, path string) ([]string, error) {
	rt, err := c.Transport(ctx, scope)
	if err != nil {
		return nil, err
	}
	base := c.URL(path, "")
	client := &http.Client{Transport: rt, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		return fmt.Errorf("listing %s: redirect to %s refused", path, req.URL.Redacted())
	}}
	next := c.URL(path, fmt.Sprintf("n=%d", ListPageSize))
	seen := map[string]bool{}
	var out []string
	for page := 0; next != nil; page++ {
		if page >= MaxListPages || len(out) > MaxListEntries {
			return nil, fmt.Errorf("listing %s: %w (%d pages, %d entries)", path, ErrListTooLong, page, len(out))
		}
		if seen[next.String()] {
			return nil, fmt.Errorf("listing %s: the Link header of page %d points back to %s", path, page, next.Redacted())
		}
		seen[next.String()] = true
		entries, link, err := c.listPage(ctx, client, next)
		if err != nil {
			return nil, err
		}
		out = append(out, entries...)
		if next, err = nextPage(base, link); err != nil {
			return nil, fmt.Errorf("listing %s: %w", path, err)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// listPage reads one page: its entries and its Link header.
func (c *Client) listPage(ctx context.Context, client *http.Client, u *url.URL) ([]string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, "", err
	}
	var body struct {
		Tags         []string `json:"tags"`
		Repositories []string `json:"repositories"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPageBytes)).Decode(&body); err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", u.Path, err)
	}
	return append(body.Tags, body.Repositories...), resp.Header.Get("Link"), nil
}

// nextPage is the rel="next" target of a Link header, resolved against
// base; nil when there is none. It must stay on base's scheme, host and
// path: a listing never leads elsewhere.
func nextPage(base *url.URL, link string) (*url.URL, error) {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		target = strings.TrimSpace(target)
		if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
			return nil, fmt.Errorf("malformed Link header %q", link)
		}
		u, err := base.Parse(target[1 : len(target)-1])
		if err != nil {
			return nil, fmt.Errorf("malformed Link header %q: %w", link, err)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host || u.Path != base.Path {
			return nil, fmt.Errorf("the Link header leads to %s, outside %s", u.Redacted(), base.Path)
		}
		return u, nil
	}
	return nil, nil
}
