// Package deploy holds manifold's deployment files; this test keeps them
// honest: the manifests parse, the configuration they carry is a valid
// manifold configuration whose paths are mounted, and the nodes' mirror
// configuration (hosts.toml in the DaemonSet's ConfigMap, k3s'
// registries.yaml) points only at registries that configuration mirrors,
// over HTTPS, trusting the CA the nodes are given.
package deploy_test

import (
	"bytes"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"sigs.k8s.io/yaml"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/upstream"
)

// manifests parses the documents of a manifest file, by kind.
func manifests(t *testing.T, file string) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]map[string]any{}
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var obj map[string]any
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			t.Fatalf("%s: a document does not parse: %v\n%s", file, err, doc)
		}
		kind, _ := obj["kind"].(string)
		if kind == "" || obj["apiVersion"] == nil {
			t.Fatalf("%s: document without kind/apiVersion:\n%s", file, doc)
		}
		kinds[kind] = obj
	}
	return kinds
}

// proxyConfig is the configuration manifold.yaml's ConfigMap carries.
func proxyConfig(t *testing.T, kinds map[string]map[string]any) *config.Config {
	t.Helper()
	data := kinds["ConfigMap"]["data"].(map[string]any)
	cfg, err := config.Parse(strings.NewReader(data["config.yaml"].(string)))
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	return cfg
}

func TestKubernetesManifests(t *testing.T) {
	kinds := manifests(t, "kubernetes/manifold.yaml")
	for _, k := range []string{"ConfigMap", "Secret", "Certificate", "PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget"} {
		if kinds[k] == nil {
			t.Errorf("no %s", k)
		}
	}
	cfg := proxyConfig(t, kinds)
	deploy := string(mustJSON(t, kinds["Deployment"]))
	for _, want := range []string{
		path.Dir(cfg.Upstreams[0].PasswordFile),
		cfg.Store.Parameters["rootdirectory"].(string),
		path.Dir(cfg.TLS.Certificate), path.Dir(cfg.TLS.Key),
		`"secretName":"` + kinds["Certificate"]["spec"].(map[string]any)["secretName"].(string) + `"`,
		"/etc/manifold", "/readyz", "/healthz", `"serve"`, `"scheme":"HTTPS"`,
		cfg.Cache.Content.Parameters["rootdirectory"].(string),
	} {
		if !strings.Contains(deploy, want) {
			t.Errorf("Deployment does not mention %s", want)
		}
	}
}

// mirrored is the set of registries that cfg's upstreams mirror: those
// listed in mirrorOf and each upstream's own.
func mirrored(t *testing.T, cfg *config.Config) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, u := range cfg.Upstreams {
		for _, m := range u.MirrorOf {
			out[string(m)] = true
		}
		host := strings.TrimSuffix(strings.SplitN(string(u.URL), "://", 2)[1], "/")
		out[upstream.CanonicalRegistry(host)] = true
	}
	return out
}

// hostsToml is containerd's hosts.toml, as far as the test reads it.
type hostsToml struct {
	Server string `toml:"server"`
	Host   map[string]struct {
		Capabilities []string `toml:"capabilities"`
		CA           string   `toml:"ca"`
	} `toml:"host"`
}

// TestMirrorHosts: every hosts.toml of the DaemonSet's ConfigMap parses as
// TOML, sends pulls and resolves (never pushes) to manifold over HTTPS
// with the CA the DaemonSet writes, and names a registry that manifold's
// configuration mirrors; the DaemonSet writes into the nodes'
// /etc/containerd/certs.d on every node.
func TestMirrorHosts(t *testing.T) {
	cfg := proxyConfig(t, manifests(t, "kubernetes/manifold.yaml"))
	mirrors := mirrored(t, cfg)
	kinds := manifests(t, "kubernetes/mirror-hosts.yaml")
	ds := string(mustJSON(t, kinds["DaemonSet"]))
	for _, want := range []string{`"path":"/etc/containerd/certs.d"`, `"operator":"Exists"`, `"name":"manifold-mirror-hosts"`, "/certs.d/manifold-ca.crt"} {
		if !strings.Contains(ds, want) {
			t.Errorf("DaemonSet does not mention %s", want)
		}
	}
	data := kinds["ConfigMap"]["data"].(map[string]any)
	if _, ok := data["ca.crt"]; !ok {
		t.Error("the ConfigMap has no ca.crt")
	}
	port := regexp.MustCompile(`_([0-9]+)$`)
	n := 0
	for key, v := range data {
		reg, ok := strings.CutSuffix(key, ".toml")
		if !ok {
			continue
		}
		n++
		reg = port.ReplaceAllString(reg, ":$1")
		if r, err := upstream.ParseRegistry(reg); err != nil || !mirrors[r] {
			t.Errorf("%s: registry %s (%v) is not one that manifold.yaml's configuration mirrors (%v)", key, reg, err, mirrors)
		}
		var h hostsToml
		if _, err := toml.Decode(v.(string), &h); err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if len(h.Host) == 0 || !strings.HasPrefix(h.Server, "https://") {
			t.Errorf("%s: server %q, %d hosts; want the registry over https and a host", key, h.Server, len(h.Host))
		}
		for url, host := range h.Host {
			if !strings.HasPrefix(url, "https://") || host.CA != "/etc/containerd/certs.d/manifold-ca.crt" || !slices.Equal(host.Capabilities, []string{"pull", "resolve"}) {
				t.Errorf("%s: host %s %+v; want https, ca /etc/containerd/certs.d/manifold-ca.crt, capabilities pull and resolve", key, url, host)
			}
		}
	}
	if n == 0 {
		t.Error("the ConfigMap holds no hosts.toml")
	}
}

// TestK3sRegistries: k3s' registries.yaml parses strictly as k3s reads it,
// sends only registries that manifold mirrors to manifold over HTTPS, and
// gives every endpoint a CA.
func TestK3sRegistries(t *testing.T) {
	mirrors := mirrored(t, proxyConfig(t, manifests(t, "kubernetes/manifold.yaml")))
	b, err := os.ReadFile("k3s/registries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		Mirrors map[string]struct {
			Endpoint []string          `json:"endpoint"`
			Rewrite  map[string]string `json:"rewrite"`
		} `json:"mirrors"`
		Configs map[string]struct {
			TLS struct {
				CAFile   string `json:"ca_file"`
				CertFile string `json:"cert_file"`
				KeyFile  string `json:"key_file"`
			} `json:"tls"`
		} `json:"configs"`
	}
	if err := yaml.UnmarshalStrict(b, &reg); err != nil {
		t.Fatalf("k3s/registries.yaml: %v", err)
	}
	if len(reg.Mirrors) == 0 {
		t.Fatal("k3s/registries.yaml mirrors nothing")
	}
	for name, m := range reg.Mirrors {
		if r, err := upstream.ParseRegistry(name); err != nil || !mirrors[r] {
			t.Errorf("mirrors.%s: not a registry that manifold.yaml's configuration mirrors (%v)", name, mirrors)
		}
		for _, e := range m.Endpoint {
			host, ok := strings.CutPrefix(e, "https://")
			if !ok || reg.Configs[host].TLS.CAFile == "" {
				t.Errorf("mirrors.%s: endpoint %s: want https:// and configs.%q.tls.ca_file", name, e, host)
			}
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
