package ui_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
)

// parse parses an HTML page.
func parse(t *testing.T, b []byte) *html.Node {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// find returns the nodes under n for which ok is true.
func find(n *html.Node, ok func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	if ok(n) {
		out = append(out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, find(c, ok)...)
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	for _, t := range find(n, func(m *html.Node) bool { return m.Type == html.TextNode }) {
		b.WriteString(t.Data)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func byID(doc *html.Node, id string) *html.Node {
	ns := find(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && attr(n, "id") == id })
	if len(ns) == 0 {
		return nil
	}
	return ns[0]
}

func elems(n *html.Node, tag string) []*html.Node {
	return find(n, func(m *html.Node) bool { return m.Type == html.ElementNode && m.Data == tag })
}

// matrix reads the matrix: header, then per bare tag its cells by column.
func matrix(t *testing.T, doc *html.Node) ([]string, map[string][]string) {
	t.Helper()
	tbl := byID(doc, "matrix")
	if tbl == nil {
		t.Fatal("no matrix")
	}
	rows := elems(tbl, "tr")
	var head []string
	for _, th := range elems(rows[0], "th") {
		head = append(head, text(th))
	}
	out := map[string][]string{}
	for _, tr := range rows[1:] {
		var cells []string
		for _, td := range elems(tr, "td") {
			cells = append(cells, text(td))
		}
		out[attr(tr, "data-base")] = cells
	}
	return head, out
}

func TestRepositoryMatrix(t *testing.T) {
	t.Parallel()
	s := newSite(t, proxy.Options{})
	s.seedFixture(t)
	resp, body := regtest.Get(t, http.MethodGet, s.srv.URL+"/ui/r/team/app")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	head, rows := matrix(t, parse(t, body))
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, p := range append(linux8, "windows/amd64") {
		if _, ok := col[p]; !ok {
			t.Errorf("no column %s in %v", p, head)
		}
	}
	if col["linux/arm/v7"] > col["linux/arm/v6"] {
		t.Errorf("columns not in index order (arm/v7 first): %v", head)
	}
	one := rows["1.0"]
	if cell := one[col["linux/arm64/v8"]]; !strings.Contains(cell, "1.0-linux-arm64") {
		t.Errorf("1.0 arm64 cell: %q", cell)
	}
	if serves := one[2]; !strings.Contains(serves, "index") || !strings.Contains(serves, "application/vnd.docker.distribution.manifest.list.v2+json") {
		t.Errorf("1.0 serves: %q", serves)
	}
	two := rows["2.0"]
	if cell := two[col["linux/arm64/v8"]]; !strings.Contains(cell, "left out: config says linux/amd64, tag says linux/arm64") {
		t.Errorf("the mislabeled member's reason is not shown: %q", cell)
	}
	legacy := rows["legacy"]
	if legacy[1] != "image, merged" || !strings.Contains(legacy[col["linux/amd64"]], "bare, merged") {
		t.Errorf("the merged legacy bare tag: %q", legacy)
	}
}

// TestInjection: tags and annotations are attacker-controlled text, shown
// as text.
func TestInjection(t *testing.T) {
	t.Parallel()
	s := newSite(t, proxy.Options{})
	img := regtest.PlatformImage(t, "linux/amd64", true)
	// A tag cannot hold markup (the tag grammar), but an annotation can.
	s.reg.Push(t, "app", "1.0-linux-amd64", annotated(img, xss))
	s.reg.Push(t, "app", "1.0-linux-arm64", regtest.PlatformImage(t, "linux/arm64/v8", true))
	for _, path := range []string{"/ui/r/app", "/ui/r/app/-/1.0"} {
		_, body := regtest.Get(t, http.MethodGet, s.srv.URL+path)
		doc := parse(t, body)
		if scripts := elems(doc, "script"); len(scripts) > 0 {
			t.Errorf("%s: markup from the registry became a <script> element", path)
		}
	}
	_, body := regtest.Get(t, http.MethodGet, s.srv.URL+"/ui/r/app/-/1.0")
	if pre := byID(parse(t, body), "index-json"); pre == nil || !strings.Contains(text(pre), "\\u003cscript") && !strings.Contains(text(pre), xss) {
		t.Errorf("the annotation is not shown as text")
	}
}

// TestTagPage: the exact index bytes the proxy serves, and the lines to
// paste per platform.
func TestTagPage(t *testing.T) {
	t.Parallel()
	s := newSite(t, proxy.Options{})
	s.seedFixture(t)
	resp, served := regtest.Get(t, http.MethodGet, s.srv.URL+"/v2/team/app/manifests/1.0")
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	_, body := regtest.Get(t, http.MethodGet, s.srv.URL+"/ui/r/team/app/-/1.0")
	doc := parse(t, body)
	if pre := byID(doc, "index-json"); pre == nil || pre.FirstChild == nil || pre.FirstChild.Data != string(served) {
		t.Errorf("the page's index JSON is not the served bytes")
	}
	pull := text(byID(doc, "pull"))
	host := strings.TrimPrefix(s.srv.URL, "http://")
	for _, want := range []string{"docker pull " + host + "/team/app:1.0", "docker pull --platform linux/arm64/v8 " + host + "/team/app:1.0", "crane digest --platform linux/arm/v7 " + host + "/team/app:1.0"} {
		if !strings.Contains(pull, want) {
			t.Errorf("no %q in %q", want, pull)
		}
	}
}

// TestAPIIsInspect: /ui/api/r/<repo> is the Plan `proxy inspect --json`
// prints, for the page's bare tags.
func TestAPIIsInspect(t *testing.T) {
	t.Parallel()
	s := newSite(t, proxy.Options{})
	s.seedFixture(t)
	resp, body := regtest.Get(t, http.MethodGet, s.srv.URL+"/ui/api/r/team/app")
	var rep struct {
		Repository string
		Groups     []struct {
			Base, Serves string
			Index        *struct{ Digest string }
		}
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &rep) != nil || len(rep.Groups) != 3 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	r2, _ := regtest.Get(t, http.MethodHead, s.srv.URL+"/v2/team/app/manifests/1.0")
	if rep.Groups[0].Base != "1.0" || rep.Groups[0].Index == nil || rep.Groups[0].Index.Digest != r2.Header.Get("Docker-Content-Digest") {
		t.Errorf("the API's digest is not what the registry API serves: %+v", rep.Groups[0])
	}
}

// TestReadRules: a user sees only the repositories they may read, and
// the page is refused where a pull would be.
func TestReadRules(t *testing.T) {
	t.Parallel()
	htpasswd := regtest.Htpasswd(t, map[string]string{"alice": "a", "bob": "b"})
	s := newSite(t, proxy.Options{Access: access(t, htpasswd)})
	s.seedFixture(t)
	get := func(user, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, user[:1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, _ := get("", "/ui/"); code != http.StatusUnauthorized {
		t.Errorf("anonymous: %d", code)
	}
	if code, body := get("bob", "/ui/"); code != 200 || strings.Contains(body, "team/app") || !strings.Contains(body, "other/repo") {
		t.Errorf("bob's list: %d %s", code, body)
	}
	if code, _ := get("bob", "/ui/r/team/app"); code != http.StatusForbidden {
		t.Errorf("bob on team/app: %d", code)
	}
	if code, body := get("alice", "/ui/r/team/app"); code != 200 || !strings.Contains(body, "1.0-linux-amd64") {
		t.Errorf("alice on team/app: %d", code)
	}
	if code, _ := get("alice", "/ui/r/team/app?x=1"); code != 200 {
		t.Errorf("alice: %d", code)
	}
}

// TestLargeRepository: 10,000 tags render in under a second (a page of
// bare tags, once the proxy's caches are warm).
func TestLargeRepository(t *testing.T) {
	t.Parallel()
	s := newSite(t, proxy.Options{})
	tagMany(t, s, 10000)
	_, _ = regtest.Get(t, http.MethodGet, s.srv.URL+"/ui/r/big") // warms the caches
	start := time.Now()
	resp, body := regtest.Get(t, http.MethodGet, s.srv.URL+"/ui/r/big")
	took := time.Since(start)
	if resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	_, rows := matrix(t, parse(t, body))
	if len(rows) != 50 {
		t.Errorf("%d rows on the first page, want 50", len(rows))
	}
	if took > time.Second {
		t.Errorf("a 10,000-tag repository rendered in %s", took)
	}
	t.Logf("10,000 tags: page rendered in %s", took)
}
