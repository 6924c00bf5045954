package e2e_test

import (
	"bytes"
	"testing"
)

// TestCrane drives crane (go-containerregistry) through the proxy: for
// every platform of both groups, `crane digest --platform` (GET the tag,
// pick the entry), `crane config --platform` and `crane export --platform`
// (the flattened filesystem, read for the baked file). Then the
// second-replica case: the index digest from a HEAD on proxy A
// (`crane digest`, no platform), and every platform pulled by that digest
// from a fresh proxy process B that never served it.
func TestCrane(t *testing.T) {
	crane := requireTool(t, "crane", hintCrane)
	s := shared(t)
	repo := repoFor("crane")
	c := func(args ...string) command { return command{bin: crane, args: args, env: s.env()} }
	at := func(host, ref string) string { return host + "/" + repo + ref }

	for _, g := range s.fx.groups {
		ref := at(s.proxy.host, ":"+g.base)
		want, _ := fetchIndex(t, s.proxy.host, repo, g)
		if got := run(t, c("manifest", ref)); !bytes.Equal(got, want) {
			t.Errorf("crane manifest %s: got other bytes than the proxy serves:\n%s", ref, got)
		}
		for _, m := range g.members {
			t.Run(g.name+"/"+m.slug(), func(t *testing.T) {
				checkDigest(t, m, "crane digest --platform", string(run(t, c("digest", "--platform", m.arg(), ref))))
				checkConfig(t, m, "crane config --platform", run(t, c("config", "--platform", m.arg(), ref)))
				content, err := fileFromTar(bytes.NewReader(run(t, c("export", "--platform", m.arg(), ref, "-"))), m.file)
				if err != nil {
					t.Fatalf("crane export --platform %s: %v", m.arg(), err)
				}
				checkContent(t, m, "crane export --platform", content)
			})
		}
	}

	t.Run("by-digest-on-second-proxy", func(t *testing.T) {
		b := s.startTestProxy(t, "proxy-b-crane")
		for _, g := range s.fx.groups {
			// crane digest without --platform is a HEAD of the tag.
			idx := string(bytes.TrimSpace(run(t, c("digest", at(s.proxy.host, ":"+g.base)))))
			for _, m := range g.members {
				ref := at(b.host, "@"+idx)
				checkDigest(t, m, "crane digest --platform (proxy B, by digest)", string(run(t, c("digest", "--platform", m.arg(), ref))))
				content, err := fileFromTar(bytes.NewReader(run(t, c("export", "--platform", m.arg(), ref, "-"))), m.file)
				if err != nil {
					t.Fatalf("crane export --platform %s %s: %v", m.arg(), ref, err)
				}
				checkContent(t, m, "crane export (proxy B, by digest)", content)
			}
		}
	})
}
