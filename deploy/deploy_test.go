// Package deploy holds manifold's deployment files; this test keeps them
// honest: the manifests parse, and the configuration they carry is a valid
// manifold configuration whose paths are mounted.
package deploy_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/manifold-proxy/manifold/config"
)

func TestKubernetesManifests(t *testing.T) {
	b, err := os.ReadFile("kubernetes/manifold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]map[string]any{}
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var obj map[string]any
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			t.Fatalf("manifest does not parse: %v\n%s", err, doc)
		}
		kind, _ := obj["kind"].(string)
		if kind == "" || obj["apiVersion"] == nil {
			t.Fatalf("document without kind/apiVersion:\n%s", doc)
		}
		kinds[kind] = obj
	}
	for _, k := range []string{"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget"} {
		if kinds[k] == nil {
			t.Errorf("no %s", k)
		}
	}
	data := kinds["ConfigMap"]["data"].(map[string]any)
	cfg, err := config.Parse(strings.NewReader(data["config.yaml"].(string)))
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	deploy := string(mustJSON(t, kinds["Deployment"]))
	for _, want := range []string{
		cfg.Upstreams[0].PasswordFile[:strings.LastIndex(cfg.Upstreams[0].PasswordFile, "/")],
		cfg.Store.Parameters["rootdirectory"].(string),
		"/etc/manifold", "/readyz", "/healthz", `"serve"`,
	} {
		if !strings.Contains(deploy, want) {
			t.Errorf("Deployment does not mention %s", want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
