package e2e_test

import (
	"bytes"
	"testing"
)

// TestCrane drives crane (go-containerregistry) through the proxy: for
// every spelling of every platform of both groups and of arm64 in the real
// indexes (the matrix, spelling_test.go), `crane digest --platform` (GET
// the tag, pick the entry), `crane config --platform` and `crane export
// --platform` (the flattened filesystem, read for the baked file); a
// spelling crane's exact-variant matcher cannot find must fail with
// crane's "no child with platform". Then the
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
	}
	for _, r := range s.fx.matrix(exactVariant) {
		t.Run(r.name, func(t *testing.T) {
			ref, p, m := at(s.proxy.host, ":"+r.tag), r.s.String(), r.m
			if !r.found {
				checkNoMatch(t, r, c("digest", "--platform", p, ref), "no child with platform "+p)
				return
			}
			checkDigest(t, m, "crane digest --platform "+p, string(run(t, c("digest", "--platform", p, ref))))
			checkConfig(t, m, "crane config --platform "+p, run(t, c("config", "--platform", p, ref)))
			content, err := fileFromTar(bytes.NewReader(run(t, c("export", "--platform", p, ref, "-"))), m.file)
			if err != nil {
				t.Fatalf("crane export --platform %s: %v", p, err)
			}
			checkContent(t, m, "crane export --platform "+p, content)
		})
	}

	t.Run("by-digest-on-second-proxy", func(t *testing.T) {
		b := s.startTestProxy(t, "proxy-b-crane")
		for _, g := range s.fx.groups {
			// crane digest without --platform is a HEAD of the tag.
			idx := string(bytes.TrimSpace(run(t, c("digest", at(s.proxy.host, ":"+g.base)))))
			for _, m := range g.members {
				cranePullAndCheck(t, c, m, at(b.host, "@"+idx))
			}
		}
	})
}

// cranePullAndCheck checks, with crane, m's manifest digest, config and
// baked file as ref serves them for m's platform.
func cranePullAndCheck(t *testing.T, c func(args ...string) command, m *member, ref string) {
	t.Helper()
	checkDigest(t, m, "crane digest --platform "+ref, string(run(t, c("digest", "--platform", m.arg(), ref))))
	checkConfig(t, m, "crane config --platform "+ref, run(t, c("config", "--platform", m.arg(), ref)))
	content, err := fileFromTar(bytes.NewReader(run(t, c("export", "--platform", m.arg(), ref, "-"))), m.file)
	if err != nil {
		t.Fatalf("crane export --platform %s %s: %v", m.arg(), ref, err)
	}
	checkContent(t, m, "crane export --platform "+ref, content)
}
