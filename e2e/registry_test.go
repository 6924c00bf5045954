package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// containerdAccept is the one comma-joined Accept header containerd sends
// when it resolves a tag with HEAD.
const containerdAccept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*"

// TestIndexes checks the synthesized indexes themselves, over raw HTTP
// against the proxy process: the Docker-typed group gives a Docker
// manifest list and the OCI-typed group an OCI index, each listing every
// member with its digest, size, media type and platform; the bytes are the
// same in every repository (same members) and from a second proxy process;
// and the digest a HEAD returns on proxy A is served by a fresh proxy B.
func TestIndexes(t *testing.T) {
	s := shared(t)
	b := s.startTestProxy(t, "proxy-b-indexes")
	for _, g := range s.fx.groups {
		t.Run(g.name, func(t *testing.T) {
			body, d := fetchIndex(t, s.proxy.host, repoFor("shared"), g)
			t.Logf("%s:%s → %s, %s, %d entries", repoFor("shared"), g.base, g.indexType(), d, len(g.members))
			for _, r := range clientRepos {
				if got, gd := fetchIndex(t, s.proxy.host, repoFor(r), g); gd != d || !bytes.Equal(got, body) {
					t.Errorf("%s:%s has digest %s, %s:%s has %s: same members must give the same bytes", repoFor(r), g.base, gd, repoFor("shared"), g.base, d)
				}
			}

			// HEAD with containerd's comma-joined Accept: same headers as GET.
			url := "http://" + s.proxy.host + "/v2/" + repoFor("shared") + "/manifests/" + g.base
			head, hb := regtest.Get(t, http.MethodHead, url, containerdAccept)
			get, _ := regtest.Get(t, http.MethodGet, url, containerdAccept)
			if head.StatusCode != http.StatusOK || len(hb) != 0 {
				t.Fatalf("HEAD %s: %d, %d body bytes", url, head.StatusCode, len(hb))
			}
			for _, h := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Etag"} {
				if head.Header.Get(h) != get.Header.Get(h) {
					t.Errorf("HEAD and GET differ in %s: %q vs %q", h, head.Header.Get(h), get.Header.Get(h))
				}
			}
			headDigest := head.Header.Get("Docker-Content-Digest")
			if headDigest != d.String() {
				t.Errorf("HEAD digest %s, GET body hashes to %s", headDigest, d)
			}

			// Proxy B never served anything: it must answer the digest by
			// recomputing, with the same bytes.
			for _, host := range []string{b.host, s.proxy.host} {
				resp, got := regtest.Get(t, http.MethodGet, "http://"+host+"/v2/"+repoFor("shared")+"/manifests/"+headDigest, string(g.indexType())+", */*")
				if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) || resp.Header.Get("Content-Type") != string(g.indexType()) {
					t.Errorf("GET by digest %s from %s: %d %s, %d bytes (want the index, %d bytes)", headDigest, host, resp.StatusCode, resp.Header.Get("Content-Type"), len(got), len(body))
				}
			}
			// And B's own answer for the tag is the same (determinism
			// across processes).
			if got, gd := fetchIndex(t, b.host, repoFor("shared"), g); gd != d || !bytes.Equal(got, body) {
				t.Errorf("proxy B serves %s:%s as %s, proxy A as %s", repoFor("shared"), g.base, gd, d)
			}
		})
	}
}

// TestPassThrough: what is not synthesized reaches clients byte-identical
// — every per-platform member tag, a plain tag, the real upstream indexes
// (even when a member tag shares the base of one), and blobs.
func TestPassThrough(t *testing.T) {
	s := shared(t)
	repo := repoFor("shared")
	proxyURL := func(ref string) string { return "http://" + s.proxy.host + "/v2/" + repo + "/manifests/" + ref }
	upURL := func(ref string) string { return "http://" + s.upHost + "/v2/" + repo + "/manifests/" + ref }

	type want struct {
		ref, mediaType string
		body           []byte
	}
	var cases []want
	for _, m := range s.fx.members() {
		cases = append(cases, want{m.tag, string(m.mediaType), m.manifest}, want{m.digest.String(), string(m.mediaType), m.manifest})
	}
	cases = append(cases, want{plainTag, string(s.fx.plain.mediaType), s.fx.plain.manifest})
	for _, ri := range s.fx.multis {
		// Byte-identical also means: an arm64 entry without a variant
		// (multi-oci) stays without one, although the proxy writes v8 in
		// the indexes it synthesizes.
		mt := mediaTypeOf(t, ri.bytes)
		cases = append(cases, want{ri.tag, mt, ri.bytes}, want{ri.digest.String(), mt, ri.bytes})
	}
	for _, c := range cases {
		_, upBody := regtest.Get(t, http.MethodGet, upURL(c.ref), regtest.AllManifestTypes...)
		if !bytes.Equal(upBody, c.body) {
			t.Fatalf("upstream %s: not what was pushed", c.ref)
		}
		for _, accept := range [][]string{regtest.AllManifestTypes, {containerdAccept}, {c.mediaType}} {
			get, body := regtest.Get(t, http.MethodGet, proxyURL(c.ref), accept...)
			head, _ := regtest.Get(t, http.MethodHead, proxyURL(c.ref), accept...)
			if get.StatusCode != http.StatusOK || !bytes.Equal(body, c.body) {
				t.Errorf("GET %s (Accept %q): %d, %d bytes; want the upstream's %d bytes byte-identical", c.ref, accept, get.StatusCode, len(body), len(c.body))
				continue
			}
			wantDigest := sha256Of(c.body).String()
			for _, r := range []*http.Response{get, head} {
				if r.Header.Get("Content-Type") != c.mediaType || r.Header.Get("Docker-Content-Digest") != wantDigest {
					t.Errorf("%s %s: Content-Type %q, digest %q; want %q, %s", r.Request.Method, c.ref, r.Header.Get("Content-Type"), r.Header.Get("Docker-Content-Digest"), c.mediaType, wantDigest)
				}
			}
		}
	}

	// Blobs: a config and a layer, by GET and by Range.
	m := s.fx.groups[0].members[2]
	resp, body := regtest.Get(t, http.MethodGet, "http://"+s.proxy.host+"/v2/"+repo+"/blobs/"+m.configDigest.String())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, m.config) {
		t.Errorf("GET config blob %s: %d, %q", m.configDigest, resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.proxy.host+"/v2/"+repo+"/blobs/"+m.configDigest.String(), nil)
	req.Header.Set("Range", "bytes=0-9")
	rr, _ := regtest.Do(t, req)
	if rr.StatusCode != http.StatusPartialContent || rr.ContentLength != 10 {
		t.Errorf("Range bytes=0-9 of %s: %d, %d bytes", m.configDigest, rr.StatusCode, rr.ContentLength)
	}
}

func mediaTypeOf(t *testing.T, b []byte) string {
	t.Helper()
	var mt struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(b, &mt); err != nil {
		t.Fatal(err)
	}
	return mt.MediaType
}

var linkRE = regexp.MustCompile(`^<([^>]+)>;\s*rel="next"$`)

// TestTagsPagination: tags/list through the proxy lists every upstream
// tag plus the synthesized bare tags, sorted, and paginates with n and a
// Link header that leads through the whole list; crane, regctl and oras
// list and page through it.
func TestTagsPagination(t *testing.T) {
	s := shared(t)
	repo := repoFor("shared")
	listOf := func(t *testing.T, host, rawurl string) ([]string, string) {
		t.Helper()
		resp, body := regtest.Get(t, http.MethodGet, "http://"+host+rawurl)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", rawurl, resp.StatusCode, body)
		}
		var tl struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &tl); err != nil || tl.Name != repo {
			t.Fatalf("GET %s: %v %s", rawurl, err, body)
		}
		return tl.Tags, resp.Header.Get("Link")
	}

	upTags, _ := listOf(t, s.upHost, "/v2/"+repo+"/tags/list")
	all := append(slices.Clone(upTags), s.fx.groups[0].base, s.fx.groups[1].base)
	slices.Sort(all)
	all = slices.Compact(all)
	full, link := listOf(t, s.proxy.host, "/v2/"+repo+"/tags/list")
	if !slices.Equal(full, all) || link != "" {
		t.Fatalf("proxy tags/list = %v (Link %q); want the upstream's %d tags plus the bare tags, sorted: %v", full, link, len(upTags), all)
	}
	t.Logf("%d tags through the proxy (%d upstream + %d synthesized)", len(full), len(upTags), len(full)-len(upTags))

	const n = 4
	var walked []string
	next := "/v2/" + repo + "/tags/list?n=4"
	for pages := 0; next != ""; pages++ {
		if pages > len(all) {
			t.Fatalf("Link pagination does not end: %v", walked)
		}
		page, link := listOf(t, s.proxy.host, next)
		if len(page) > n || (link != "" && len(page) != n) {
			t.Errorf("page %s: %d tags, Link %q", next, len(page), link)
		}
		walked = append(walked, page...)
		next = ""
		if link != "" {
			m := linkRE.FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("Link %q: want <url>; rel=\"next\"", link)
			}
			u, err := url.Parse(m[1])
			if err != nil || u.Query().Get("n") != "4" || u.Query().Get("last") != page[len(page)-1] {
				t.Fatalf("Link %q: want n=4 and last=%s", link, page[len(page)-1])
			}
			next = u.RequestURI()
		}
	}
	if !slices.Equal(walked, all) {
		t.Errorf("following Link with n=%d gave %v, want %v", n, walked, all)
	}
	last := all[n-1]
	if page, _ := listOf(t, s.proxy.host, "/v2/"+repo+"/tags/list?n=4&last="+url.QueryEscape(last)); !slices.Equal(page, all[n:2*n]) {
		t.Errorf("n=4&last=%s: %v, want %v", last, page, all[n:2*n])
	}

	ref := s.proxy.host + "/" + repo
	lines := func(b []byte) []string { return strings.Fields(string(b)) }
	t.Run("crane", func(t *testing.T) {
		crane := requireTool(t, "crane", hintCrane)
		if got := lines(run(t, command{bin: crane, args: []string{"ls", ref}, env: s.env()})); !slices.Equal(got, all) {
			t.Errorf("crane ls: %v, want %v", got, all)
		}
	})
	t.Run("regctl", func(t *testing.T) {
		regctl := requireTool(t, "regctl", hintRegctl)
		rc := func(args ...string) []string {
			args = append([]string{"--host", "reg=" + s.proxy.host + ",tls=disabled"}, args...)
			return lines(run(t, command{bin: regctl, args: args, env: s.env("REGCTL_CONFIG=" + s.home + "/regctl.json")}))
		}
		if got := rc("tag", "ls", ref); !slices.Equal(got, all) {
			t.Errorf("regctl tag ls: %v, want %v", got, all)
		}
		if got := rc("tag", "ls", "--limit", "4", ref); !slices.Equal(got, all[:n]) {
			t.Errorf("regctl tag ls --limit 4: %v, want %v", got, all[:n])
		}
		if got := rc("tag", "ls", "--limit", "4", "--last", last, ref); !slices.Equal(got, all[n:2*n]) {
			t.Errorf("regctl tag ls --limit 4 --last %s: %v, want %v", last, got, all[n:2*n])
		}
	})
	t.Run("oras", func(t *testing.T) {
		oras := requireTool(t, "oras", hintOras)
		if got := lines(run(t, command{bin: oras, args: []string{"repo", "tags", "--plain-http", ref}, env: s.env()})); !slices.Equal(got, all) {
			t.Errorf("oras repo tags: %v, want %v", got, all)
		}
		if got := lines(run(t, command{bin: oras, args: []string{"repo", "tags", "--plain-http", "--last", last, ref}, env: s.env()})); !slices.Equal(got, all[n:]) {
			t.Errorf("oras repo tags --last %s: %v, want %v", last, got, all[n:])
		}
	})
}
