package upstream_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/upstream"
)

// linkServer is a real registry whose tags/list answers carry the Link
// header link(request) gives, and a count of those answers.
func linkServer(t *testing.T, link func(r *http.Request) string) (*upstream.Client, func() int) {
	t.Helper()
	reg := regtest.Serve(t, registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	for _, tag := range []string{"a", "b"} {
		reg.Push(t, "app", tag, regtest.PlatformImage(t, "linux/amd64", false))
	}
	reg.SetFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if strings.HasSuffix(r.URL.Path, "/tags/list") {
			if l := link(r); l != "" {
				w.Header().Set("Link", l)
			}
		}
		return false
	})
	return reg.Client(t), func() int { return reg.CountPath("/tags/list") }
}

// TestM3_TagsLinkLoop: a tags/list Link pointing back to itself was
// followed until the 60 s timeout (264,108 upstream requests from one
// client request). It now ends at once with an error.
func TestM3_TagsLinkLoop(t *testing.T) {
	t.Parallel()
	c, lists := linkServer(t, func(r *http.Request) string { return "<" + r.URL.RequestURI() + `>; rel="next"` })
	_, err := c.Tags(context.Background(), "app")
	if err == nil || !strings.Contains(err.Error(), "points back") {
		t.Fatalf("err = %v, want a loop error", err)
	}
	if n := lists(); n != 1 {
		t.Errorf("%d tags/list requests for a self-referencing Link, want 1", n)
	}
}

// TestM3_TagsLinkBounds: a Link that always leads to a new page stops at
// MaxListPages; one that leads to another host or path is refused.
func TestM3_TagsLinkBounds(t *testing.T) {
	t.Parallel()
	var page atomic.Int64
	c, lists := linkServer(t, func(*http.Request) string {
		return "</v2/app/tags/list?n=1000&page=" + strconv.FormatInt(page.Add(1), 10) + `>; rel="next"`
	})
	_, err := c.Tags(context.Background(), "app")
	if !errors.Is(err, upstream.ErrListTooLong) {
		t.Fatalf("err = %v, want ErrListTooLong", err)
	}
	if n := lists(); n != upstream.MaxListPages {
		t.Errorf("%d pages read, want the bound %d", n, upstream.MaxListPages)
	}
	c2, _ := linkServer(t, func(*http.Request) string { return `<http://169.254.169.254/v2/app/tags/list>; rel="next"` })
	if _, err := c2.Tags(context.Background(), "app"); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("Link to another host: %v", err)
	}
	c3, _ := linkServer(t, func(*http.Request) string { return "" })
	if tags, err := c3.Tags(context.Background(), "app"); err != nil || len(tags) != 2 {
		t.Errorf("plain listing: %v %v", tags, err)
	}
}
