package e2e_test

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// conformanceOff are the features distribution v3 itself lacks; they are
// turned off in both runs: the referrers API, sha512 digests, manifests
// with a subject, and non-distributable layers.
var conformanceOff = []string{
	"OCI_API_REFERRER=false",
	"OCI_DATA_SHA512=false",
	"OCI_DATA_SUBJECT=false",
	"OCI_DATA_SUBJECT_MISSING=false",
	"OCI_DATA_SUBJECT_LIST=false",
	"OCI_DATA_NONDISTRIBUTABLE=false",
}

// TestConformance runs the OCI distribution-spec conformance suite
// (github.com/opencontainers/distribution-spec/conformance, built with go
// test -c by .ci/install-deps) twice: against the upstream alone, then
// through a proxy process in front of it. Every test that passes against
// the upstream must pass through the proxy. Results are read from the
// files the suite writes (results.yaml, junit.xml), not from its exit
// status: a configuration error makes it exit 0 without running anything.
func TestConformance(t *testing.T) {
	bin := requireTool(t, "conformance.test", hintConformance)
	s := shared(t)
	px := s.startTestProxy(t, "proxy-conformance")

	up := runConformance(t, s, bin, "upstream", s.upHost)
	through := runConformance(t, s, bin, "proxy", px.host)
	t.Logf("conformance against the upstream (distribution v3): %s", up.summary())
	t.Logf("conformance through the proxy:                      %s", through.summary())
	if len(up.passed) < 100 {
		t.Fatalf("only %d conformance tests passed against the upstream: the baseline is broken", len(up.passed))
	}
	var missing []string
	for name, n := range up.passed {
		if through.passed[name] < n {
			missing = append(missing, fmt.Sprintf("%s (%d/%d passed)", name, through.passed[name], n))
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("passes against the upstream, not through the proxy: %s", m)
		for _, detail := range through.failures[strings.SplitN(m, " (", 2)[0]] {
			t.Logf("  %s", detail)
		}
	}
	for name := range through.failures {
		if up.passed[name] == 0 {
			t.Logf("fails through the proxy and against the upstream alike: %s", name)
		}
	}
}

type conformanceResult struct {
	passed   map[string]int      // test name → times passed (names repeat)
	failures map[string][]string // test name → failure messages
	counts   map[string]int      // status → count
}

func (r conformanceResult) summary() string {
	var parts []string
	for _, k := range []string{"passed", "failure", "error", "skipped"} {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.counts[k]))
	}
	return strings.Join(parts, ", ")
}

// runConformance runs the suite against host with repositories of its own
// and reads its results.
func runConformance(t *testing.T, s *suite, bin, name, host string) conformanceResult {
	t.Helper()
	wd := s.tempDir(t, "conformance-"+name)
	results := filepath.Join(wd, "results")
	var env []string
	for _, e := range s.env() {
		if !strings.HasPrefix(e, "OCI_") {
			env = append(env, e)
		}
	}
	env = append(env, "OCI_REGISTRY="+host, "OCI_TLS=disabled",
		"OCI_REPO1=conformance/"+name+"-1", "OCI_REPO2=conformance/"+name+"-2",
		"OCI_RESULTS_DIR="+results, "OCI_LOG=warn")
	env = append(env, conformanceOff...)
	// It exits 1 when a test fails; the results decide.
	stdout, stderr, err := command{bin: bin, env: env, dir: wd, timeout: 5 * time.Minute}.output()
	if err := os.WriteFile(filepath.Join(wd, "stdout.txt"), append(stdout, stderr...), 0o644); err != nil {
		t.Fatal(err)
	}

	raw, rerr := os.ReadFile(filepath.Join(results, "results.yaml"))
	if rerr != nil {
		t.Fatalf("conformance against %s wrote no results (%v); exit: %v\n%s", name, rerr, err, stderr)
	}
	var ry struct {
		Config struct {
			APIs struct {
				Referrer bool `json:"referrer"`
			} `json:"apis"`
			Data map[string]bool `json:"data"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(raw, &ry); err != nil {
		t.Fatalf("results.yaml: %v", err)
	}
	if ry.Config.APIs.Referrer || ry.Config.Data["sha512"] || ry.Config.Data["subject"] || ry.Config.Data["nondistributable"] || !ry.Config.Data["image"] || !ry.Config.Data["index"] {
		t.Fatalf("conformance against %s ran with another configuration than asked: %s", name, raw)
	}

	var ju struct {
		Suites []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Status  string `xml:"status,attr"`
				Out     string `xml:"system-out"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	jb, jerr := os.ReadFile(filepath.Join(results, "junit.xml"))
	if jerr != nil {
		t.Fatal(jerr)
	}
	if err := xml.Unmarshal(jb, &ju); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	r := conformanceResult{passed: map[string]int{}, failures: map[string][]string{}, counts: map[string]int{}}
	for _, su := range ju.Suites {
		for _, c := range su.Cases {
			r.counts[c.Status]++
			switch c.Status {
			case "passed":
				r.passed[c.Name]++
			case "failure", "error":
				msg := strings.TrimSpace(c.Out)
				if c.Failure != nil && c.Failure.Message != "" {
					msg = c.Failure.Message + ": " + msg
				}
				r.failures[c.Name] = append(r.failures[c.Name], msg)
			}
		}
	}
	if len(r.counts) == 0 {
		t.Fatalf("conformance against %s ran no tests; exit: %v\n%s", name, err, stderr)
	}
	return r
}
