package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/manifold-proxy/manifold/config"
)

// replicas are compose.yaml's manifold services.
var replicas = []string{"manifold-1", "manifold-2", "manifold-3"}

// loadCompose loads dir/compose.yaml as docker compose does, with the
// compose specification's schema checked (an unknown key is an error) and
// env as the only environment (the defaults of its ${VAR:-default}).
func loadCompose(t *testing.T, dir string, env map[string]string) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(abs, "compose.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: b}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SkipValidation = false
		o.SkipConsistencyCheck = false
		o.ResolvePaths = true
	})
}

// env is a service's environment, unset variables left out.
func env(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// replicaConfig is the configuration a manifold service runs with: the
// file mounted where its --config says, with its environment applied.
func replicaConfig(t *testing.T, s types.ServiceConfig) *config.Config {
	t.Helper()
	i := slices.Index(s.Command, "--config")
	if len(s.Command) == 0 || s.Command[0] != "serve" || i < 0 || i+1 >= len(s.Command) {
		t.Fatalf("%s: command %q, want serve --config FILE", s.Name, s.Command)
	}
	target := s.Command[i+1]
	var source string
	for _, v := range s.Volumes {
		if v.Target == target && v.Type == types.VolumeTypeBind && v.ReadOnly {
			source = v.Source
		}
	}
	if source == "" {
		t.Fatalf("%s: nothing mounted read-only at %s, its --config", s.Name, target)
	}
	f, err := os.Open(source)
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	defer f.Close()
	cfg, err := config.Parse(f)
	if err != nil {
		t.Fatalf("%s: %s: %v", s.Name, source, err)
	}
	if err := cfg.ApplyEnv(func(k string) string { return env(s)[k] }); err != nil {
		t.Fatalf("%s: environment: %v", s.Name, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: %s: %v", s.Name, source, err)
	}
	return cfg
}

// TestCompose: compose.yaml loads under the compose specification's
// schema; its three manifold replicas run `proxy serve` with a mounted
// configuration that parses and validates, and that shares one Redis and
// one S3 bucket (the compose file's own services) for the tag cache, the
// index store and the content cache, with the secrets in the environment
// (equal to the ones Redis and versitygw are started with), not in the
// file; HAProxy balances over exactly those three on the port they listen
// on, checking /readyz.
func TestCompose(t *testing.T) {
	p, err := loadCompose(t, "compose", nil)
	if err != nil {
		t.Fatalf("compose/compose.yaml: %v", err)
	}
	want := append(slices.Clone(replicas), "haproxy", "redis", "s3-init", "s3", "upstream")
	if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("services %v, want %v", got, want)
	}

	var first *config.Config
	for _, name := range replicas {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		cfg := replicaConfig(t, s)
		if first == nil {
			first = cfg
		}
		// One configuration for all: the same Redis, bucket and roots.
		if !reflect.DeepEqual(cfg.Redis, first.Redis) || !reflect.DeepEqual(cfg.Store, first.Store) || !reflect.DeepEqual(cfg.Cache.Content, first.Cache.Content) || cfg.Listen != first.Listen {
			t.Errorf("%s: redis, store, cache.content or listen differ from %s's", name, replicas[0])
		}
		if s.Build == nil || s.Image != p.Services[replicas[0]].Image {
			t.Errorf("%s: image %q (build %v), want the image built from the repository, as %s", name, s.Image, s.Build, replicas[0])
		}
		if !s.ReadOnly || s.User == "" || strings.HasPrefix(s.User, "0") || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: read_only %v, user %q, cap_drop %v; want a read-only root, a non-root user, ALL capabilities dropped", name, s.ReadOnly, s.User, s.CapDrop)
		}
		if !slices.ContainsFunc(s.Tmpfs, func(m string) bool { return strings.HasPrefix(m, "/tmp") }) {
			t.Errorf("%s: no tmpfs on /tmp, where fills spool before they go to S3 (the root is read-only)", name)
		}
		e := env(s)
		if e["MANIFOLD_REDIS_PASSWORD"] != cfg.Redis.Password || cfg.Redis.Password == "" {
			t.Errorf("%s: redis.password %q, want it from MANIFOLD_REDIS_PASSWORD", name, cfg.Redis.Password)
		}
		if e["AWS_ACCESS_KEY_ID"] == "" || e["AWS_SECRET_ACCESS_KEY"] == "" {
			t.Errorf("%s: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the s3 driver's credentials, are not set", name)
		}
		for _, dep := range []string{"redis", "s3", "upstream"} {
			if _, ok := s.DependsOn[dep]; !ok {
				t.Errorf("%s: does not depend on %s", name, dep)
			}
		}
	}
	cfg := first

	// Secrets only in the environment.
	if cfg.Redis.PasswordFile != "" {
		t.Errorf("redis.passwordFile %q: the password comes from MANIFOLD_REDIS_PASSWORD", cfg.Redis.PasswordFile)
	}
	raw, err := os.ReadFile("compose/manifold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"accesskey", "secretkey", "password"} {
		if strings.Contains(strings.ToLower(string(raw)), secret+":") {
			t.Errorf("compose/manifold.yaml sets %s: secrets belong in compose.yaml's environment", secret)
		}
	}

	// Redis: the compose file's, with the password the replicas send.
	if len(cfg.Redis.Addrs) != 1 {
		t.Fatalf("redis.addrs %v, want the compose file's redis", cfg.Redis.Addrs)
	}
	host, _, err := net.SplitHostPort(string(cfg.Redis.Addrs[0]))
	if err != nil || host != "redis" {
		t.Errorf("redis.addrs %v: want redis:<port>", cfg.Redis.Addrs)
	}
	redis := p.Services["redis"]
	if i := slices.Index(redis.Command, "--requirepass"); i < 0 || i+1 >= len(redis.Command) || redis.Command[i+1] != cfg.Redis.Password {
		t.Errorf("redis: command %q does not require the password the replicas send", redis.Command)
	}

	// S3: store and content cache on the compose file's versitygw, one
	// bucket (made by s3-init), under two roots, with the keys it has.
	for what, c := range map[string]struct {
		driver string
		params map[string]any
	}{"store": {cfg.Store.Driver, cfg.Store.Parameters}, "cache.content": {cfg.Cache.Content.Driver, cfg.Cache.Content.Parameters}} {
		if c.driver != "s3" {
			t.Errorf("%s.driver %q, want s3", what, c.driver)
		}
		for _, k := range []string{"bucket", "region", "regionendpoint", "forcepathstyle", "rootdirectory"} {
			if c.params[k] == nil {
				t.Errorf("%s.parameters.%s: not set", what, k)
			}
		}
		if ep := fmt.Sprint(c.params["regionendpoint"]); !strings.HasPrefix(ep, "http://s3:") {
			t.Errorf("%s.parameters.regionendpoint %s: want the compose file's s3", what, ep)
		}
	}
	sp, cp := maps.Clone(cfg.Store.Parameters), maps.Clone(cfg.Cache.Content.Parameters)
	if sp["rootdirectory"] == cp["rootdirectory"] {
		t.Errorf("store and cache.content share rootdirectory %v: give each its own", sp["rootdirectory"])
	}
	delete(sp, "rootdirectory")
	delete(cp, "rootdirectory")
	if !reflect.DeepEqual(sp, cp) {
		t.Errorf("store.parameters %v and cache.content.parameters %v name different S3 servers or buckets", sp, cp)
	}
	s3 := p.Services["s3"]
	if s3.Image != "versity/versitygw:v1.8.0" {
		t.Errorf("s3: image %q, want versity/versitygw:v1.8.0", s3.Image)
	}
	s3env, repl := env(s3), env(p.Services[replicas[0]])
	if s3env["ROOT_ACCESS_KEY"] != repl["AWS_ACCESS_KEY_ID"] || s3env["ROOT_SECRET_KEY"] != repl["AWS_SECRET_ACCESS_KEY"] {
		t.Errorf("s3: ROOT_ACCESS_KEY/ROOT_SECRET_KEY are not the keys the replicas send")
	}
	port := strings.TrimPrefix(fmt.Sprint(cfg.Store.Parameters["regionendpoint"]), "http://s3:")
	if !slices.Contains(s3.Command, ":"+port) || !slices.Contains(s3.Command, "posix") {
		t.Errorf("s3: command %q, want versitygw posix listening on :%s", s3.Command, port)
	}
	root := s3.Command[len(s3.Command)-1]
	init := p.Services["s3-init"]
	if !slices.Contains(init.Command, root+"/"+fmt.Sprint(cfg.Store.Parameters["bucket"])) {
		t.Errorf("s3-init: command %q does not make the bucket %s/%v", init.Command, root, cfg.Store.Parameters["bucket"])
	}
	if d, ok := s3.DependsOn["s3-init"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("s3: does not wait for s3-init to complete")
	}

	// The upstream is the compose file's registry.
	if len(cfg.Upstreams) != 1 || !strings.HasPrefix(string(cfg.Upstreams[0].URL), "http://upstream:") {
		t.Errorf("upstreams %v, want the compose file's upstream", cfg.Upstreams)
	}

	// HAProxy: exactly the three replicas, on the port they listen on.
	_, listenPort, err := net.SplitHostPort(string(cfg.Listen))
	if err != nil {
		t.Fatal(err)
	}
	hp := p.Services["haproxy"]
	mounted := false
	for _, v := range hp.Volumes {
		mounted = mounted || (v.Target == "/usr/local/etc/haproxy/haproxy.cfg" && filepath.Base(v.Source) == "haproxy.cfg")
	}
	if !mounted {
		t.Error("haproxy: haproxy.cfg is not mounted at /usr/local/etc/haproxy/haproxy.cfg")
	}
	servers, options := haproxyBackend(t, "compose/haproxy.cfg")
	want = nil
	for _, r := range replicas {
		want = append(want, r+" "+r+":"+listenPort)
	}
	if !slices.Equal(servers, want) {
		t.Errorf("haproxy.cfg's backend servers %q, want %q", servers, want)
	}
	for _, o := range []string{"balance roundrobin", "option httpchk GET /readyz", "http-check expect status 200"} {
		if !slices.Contains(options, o) {
			t.Errorf("haproxy.cfg's backend has no %q", o)
		}
	}
	if !slices.ContainsFunc(options, func(o string) bool { return strings.HasPrefix(o, "default-server ") && strings.Contains(o, " check") }) {
		t.Error("haproxy.cfg's backend does not health-check its servers")
	}
	if len(hp.Ports) != 1 || fmt.Sprint(hp.Ports[0].Target) != listenPort {
		t.Errorf("haproxy: ports %v, want one, to the frontend", hp.Ports)
	}

	// The image: built from the repository, cmd/proxy, non-root.
	b := p.Services[replicas[0]].Build
	df, err := os.ReadFile(filepath.Join(b.Context, b.Dockerfile))
	if err != nil {
		t.Fatalf("the replicas' Dockerfile: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.Context, "go.mod")); err != nil {
		t.Errorf("build context %s is not the repository's root: %v", b.Context, err)
	}
	for _, w := range []string{"./cmd/proxy", "CGO_ENABLED=0", "USER 65532"} {
		if !strings.Contains(string(df), w) {
			t.Errorf("the Dockerfile does not say %s", w)
		}
	}
}

// TestComposeStrict: the loader TestCompose uses refuses what docker
// compose refuses: an unknown key fails, so TestCompose would see one.
func TestComposeStrict(t *testing.T) {
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bad := strings.Replace(string(b), "\n  haproxy:\n", "\n  haproxy:\n    replicaz: 3\n", 1)
	if bad == string(b) {
		t.Fatal("no haproxy service to spoil")
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCompose(t, dir, nil); err == nil || !strings.Contains(err.Error(), "replicaz") {
		t.Errorf("a compose file with an unknown key loaded (error %v)", err)
	}
}

// TestHAProxyConfig: haproxy itself accepts haproxy.cfg (`haproxy -c`),
// when it is installed; the replicas' names, which resolve only inside
// compose's network, are allowed to fail here (init-addr none).
func TestHAProxyConfig(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (apt-get install haproxy)")
	}
	out, err := exec.Command(bin, "-c", "-f", "compose/haproxy.cfg").CombinedOutput()
	if err != nil {
		t.Errorf("haproxy -c -f compose/haproxy.cfg: %v\n%s", err, out)
	}
}

// haproxyBackend reads the one backend section of an haproxy.cfg: its
// servers ("name host:port", options after the address left out) and its
// other lines.
func haproxyBackend(t *testing.T, file string) (servers, options []string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	backends := 0
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			in = strings.HasPrefix(line, "backend ")
			if in {
				backends++
			}
			continue
		}
		if !in {
			continue
		}
		fields := strings.Fields(line)
		if fields[0] == "server" && len(fields) >= 3 {
			servers = append(servers, fields[1]+" "+fields[2])
		} else {
			options = append(options, strings.Join(fields, " "))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if backends != 1 {
		t.Fatalf("%s: %d backend sections, want one", file, backends)
	}
	return servers, options
}
