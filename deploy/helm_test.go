package deploy_test

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/manifold-proxy/manifold/config"
)

const chartDir = "helm/manifold"

// certificate is the part of cert-manager's Certificate (cert-manager.io/v1)
// the chart writes; decoded strictly, a field it does not know fails.
type certificate struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		SecretName  string   `json:"secretName"`
		DNSNames    []string `json:"dnsNames"`
		Duration    string   `json:"duration"`
		RenewBefore string   `json:"renewBefore"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		IssuerRef struct {
			Kind  string `json:"kind"`
			Name  string `json:"name"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// release is a rendered chart, each object decoded into its API type.
type release struct {
	values       map[string]any // the values rendered with, coalesced with the chart's
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	pvcs         map[string]*corev1.PersistentVolumeClaim
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	certificates []*certificate
	accounts     map[string]*corev1.ServiceAccount
}

// render renders the chart as `helm install manifold deploy/helm/manifold
// [-f valuesFile]` would, with helm's own engine and loader (no cluster),
// and decodes every document strictly into its k8s.io/api type.
func render(t *testing.T, valuesFile string) *release {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	user := map[string]any{}
	if valuesFile != "" {
		b, err := os.ReadFile(valuesFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &user); err != nil {
			t.Fatalf("%s: %v", valuesFile, err)
		}
	}
	vals, err := util.ToRenderValues(ch, user, common.ReleaseOptions{Name: "manifold", Namespace: "registry", IsInstall: true, Revision: 1}, nil)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("rendering the chart with %q: %v", valuesFile, err)
	}
	r := &release{
		values:     vals["Values"].(common.Values),
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		pvcs: map[string]*corev1.PersistentVolumeClaim{}, accounts: map[string]*corev1.ServiceAccount{},
	}
	names := slices.Sorted(maps.Keys(out))
	sep := regexp.MustCompile(`(?m)^---\s*$`)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for _, doc := range sep.Split(out[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			r.decode(t, name, []byte(doc))
		}
	}
	return r
}

// stripComments drops whole-line comments, to tell an empty document.
func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decode decodes doc into the type of its kind, refusing unknown fields.
func (r *release) decode(t *testing.T, file string, doc []byte) {
	t.Helper()
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		t.Fatalf("%s: %v\n%s", file, err, doc)
	}
	strict := func(v any) {
		t.Helper()
		if err := yaml.UnmarshalStrict(doc, v); err != nil {
			t.Fatalf("%s: %s %s: %v\n%s", file, head.APIVersion, head.Kind, err, doc)
		}
	}
	switch head.APIVersion + " " + head.Kind {
	case "v1 ConfigMap":
		v := &corev1.ConfigMap{}
		strict(v)
		r.configMaps[v.Name] = v
	case "v1 Secret":
		v := &corev1.Secret{}
		strict(v)
		r.secrets[v.Name] = v
	case "v1 PersistentVolumeClaim":
		v := &corev1.PersistentVolumeClaim{}
		strict(v)
		r.pvcs[v.Name] = v
	case "v1 Service":
		v := &corev1.Service{}
		strict(v)
		r.services = append(r.services, v)
	case "v1 ServiceAccount":
		v := &corev1.ServiceAccount{}
		strict(v)
		r.accounts[v.Name] = v
	case "apps/v1 Deployment":
		v := &appsv1.Deployment{}
		strict(v)
		r.deployments = append(r.deployments, v)
	case "policy/v1 PodDisruptionBudget":
		v := &policyv1.PodDisruptionBudget{}
		strict(v)
		r.pdbs = append(r.pdbs, v)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		v := &autoscalingv2.HorizontalPodAutoscaler{}
		strict(v)
		r.hpas = append(r.hpas, v)
	case "cert-manager.io/v1 Certificate":
		v := &certificate{}
		strict(v)
		r.certificates = append(r.certificates, v)
	default:
		t.Fatalf("%s: a %s %s, which the test does not know", file, head.APIVersion, head.Kind)
	}
}

// value is the value at a dotted path of the rendered values, or nil.
func (r *release) value(p string) any {
	var v any = map[string]any(r.values)
	for _, k := range strings.Split(p, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			if cv, ok2 := v.(common.Values); ok2 {
				m = cv
			} else {
				return nil
			}
		}
		v = m[k]
	}
	return v
}

func (r *release) str(p string) string {
	if v := r.value(p); v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// external are the Secrets values declare as the user's own: referenced
// by the chart, made by no template.
func (r *release) external() map[string]bool {
	out := map[string]bool{}
	for _, p := range []string{"storage.s3.existingSecret", "redis.existingSecret", "auth.htpasswd.existingSecret"} {
		if s := r.str(p); s != "" {
			out[s] = true
		}
	}
	if r.value("tls.enabled") == true && r.value("tls.certManager.enabled") != true {
		out[r.str("tls.secretName")] = true
	}
	ups, _ := r.value("upstreams").([]any)
	for _, u := range ups {
		if ps, ok := u.(map[string]any)["passwordSecret"].(map[string]any); ok {
			out[fmt.Sprint(ps["name"])] = true
		}
	}
	ips, _ := r.value("imagePullSecrets").([]any)
	for _, s := range ips {
		out[fmt.Sprint(s.(map[string]any)["name"])] = true
	}
	return out
}

func TestHelmChart(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no ci/*.yaml values files")
	}
	for _, file := range append([]string{""}, cases...) {
		name := "default"
		if file != "" {
			name = filepath.Base(file)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkRelease(t, render(t, file))
		})
	}
}

// checkRelease checks what every set of values must give.
func checkRelease(t *testing.T, r *release) {
	if len(r.deployments) != 1 || len(r.services) != 1 || len(r.configMaps) != 1 {
		t.Fatalf("%d Deployments, %d Services, %d ConfigMaps; want one each", len(r.deployments), len(r.services), len(r.configMaps))
	}
	d := r.deployments[0]
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want one", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The configuration: the ConfigMap's config.yaml, the file serve reads.
	var cm *corev1.ConfigMap
	for _, v := range r.configMaps {
		cm = v
	}
	cfg, err := config.Parse(strings.NewReader(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("config.yaml: %v\n%s", err, cm.Data["config.yaml"])
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config.yaml: %v\n%s", err, cm.Data["config.yaml"])
	}
	if !slices.Equal(c.Args, []string{"serve", "--config", "/etc/manifold/config.yaml"}) {
		t.Errorf("args %q, want serve --config /etc/manifold/config.yaml", c.Args)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	if v := volumes[mounts["config"].Name]; mounts["config"].MountPath != "/etc/manifold" || v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("the ConfigMap %s is not mounted at /etc/manifold", cm.Name)
	}

	// Every file and directory the configuration names is mounted, from a
	// volume of the right kind; the root filesystem is read-only.
	mountOf := func(p string) (corev1.VolumeMount, bool) {
		best := corev1.VolumeMount{}
		for _, m := range c.VolumeMounts {
			if (p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/")) && len(m.MountPath) > len(best.MountPath) {
				best = m
			}
		}
		return best, best.Name != ""
	}
	need := map[string]string{} // path → what names it
	if cfg.TLS.Certificate != "" {
		need[cfg.TLS.Certificate], need[cfg.TLS.Key] = "tls.certificate", "tls.key"
	}
	if cfg.Auth.Htpasswd != "" {
		need[cfg.Auth.Htpasswd] = "auth.htpasswd"
	}
	for i, u := range cfg.Upstreams {
		if u.PasswordFile != "" {
			need[u.PasswordFile] = fmt.Sprintf("upstreams[%d].passwordFile", i)
		}
	}
	if cfg.Store.Driver == "filesystem" {
		need[fmt.Sprint(cfg.Store.Parameters["rootdirectory"])] = "store.parameters.rootdirectory"
	}
	if cfg.Cache.Content.Driver == "filesystem" {
		need[fmt.Sprint(cfg.Cache.Content.Parameters["rootdirectory"])] = "cache.content.parameters.rootdirectory"
	}
	need["/tmp/spool"] = "the content cache's spool (os.TempDir, /tmp in the image)"
	for p, what := range need {
		m, ok := mountOf(p)
		if !ok {
			t.Errorf("%s %s is on the read-only root filesystem: nothing is mounted there", what, p)
			continue
		}
		if strings.HasSuffix(what, "rootdirectory") || strings.Contains(what, "spool") {
			if m.ReadOnly {
				t.Errorf("%s %s: mounted read-only (%s)", what, p, m.Name)
			}
			continue
		}
		// A secret file: from a Secret volume, with the file at that key.
		v := volumes[m.Name]
		rel := strings.TrimPrefix(p, m.MountPath+"/")
		if v.Secret == nil {
			t.Errorf("%s %s: volume %s is not a Secret", what, p, m.Name)
			continue
		}
		if len(v.Secret.Items) > 0 && !slices.ContainsFunc(v.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == rel }) {
			t.Errorf("%s %s: Secret volume %s has no item at %s", what, p, m.Name, rel)
		}
		if len(v.Secret.Items) == 0 && strings.HasPrefix(what, "tls.") && rel != "tls.crt" && rel != "tls.key" {
			t.Errorf("%s %s: a kubernetes.io/tls Secret holds tls.crt and tls.key", what, p)
		}
	}
	if cfg.TLS.Certificate != "" && r.value("tls.enabled") != true {
		t.Error("config.yaml has tls without tls.enabled")
	}

	// Secrets in the environment, never in config.yaml.
	if cfg.Redis.Password != "" {
		t.Error("config.yaml carries redis.password: it belongs in a Secret")
	}
	for _, params := range []map[string]any{cfg.Store.Parameters, cfg.Cache.Content.Parameters} {
		if params["accesskey"] != nil || params["secretkey"] != nil {
			t.Error("config.yaml carries S3 keys: they belong in a Secret")
		}
	}

	// Probes: liveness /healthz, readiness /readyz, on the container's
	// port, HTTPS when the proxy serves TLS.
	scheme := corev1.URISchemeHTTP
	if cfg.TLS.Certificate != "" {
		scheme = corev1.URISchemeHTTPS
	}
	if len(c.Ports) != 1 || fmt.Sprintf(":%d", c.Ports[0].ContainerPort) != string(cfg.Listen) {
		t.Errorf("container ports %v, want the one config listen %s names", c.Ports, cfg.Listen)
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", p.what)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Scheme != scheme || (g.Port != intstr.FromString(c.Ports[0].Name) && g.Port != intstr.FromInt32(c.Ports[0].ContainerPort)) {
			t.Errorf("%s probe %s %s on %s, want %s %s on the container's port", p.what, g.Scheme, g.Path, g.Port.String(), scheme, p.path)
		}
	}

	// securityContext: non-root, read-only root, no capabilities, the
	// runtime's seccomp profile; no service account token.
	psc, sc := pod.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
		t.Error("the pod does not run as a non-root user")
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("the pod's seccomp profile is not RuntimeDefault")
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("the container's root filesystem is not read-only")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("the container allows privilege escalation")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Error("the container does not drop ALL capabilities")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it never uses")
	}
	if r.accounts[pod.ServiceAccountName] == nil {
		t.Errorf("service account %q is not rendered", pod.ServiceAccountName)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %v: want cpu and memory requests and a memory limit", c.Resources)
	}

	// Selection: the Deployment, Service, PDB and HPA agree on the pods.
	labels := d.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if d.Spec.Selector == nil || !matches(d.Spec.Selector.MatchLabels) {
		t.Error("the Deployment's selector does not match its pods")
	}
	svc := r.services[0]
	if !matches(svc.Spec.Selector) || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != intstr.FromString(c.Ports[0].Name) {
		t.Errorf("the Service does not send to the pods' %s port", c.Ports[0].Name)
	}
	if r.value("podDisruptionBudget.enabled") == true {
		if len(r.pdbs) != 1 || r.pdbs[0].Spec.Selector == nil || !matches(r.pdbs[0].Spec.Selector.MatchLabels) {
			t.Error("no PodDisruptionBudget over the pods")
		} else if mu := r.pdbs[0].Spec.MaxUnavailable; mu == nil || mu.IntValue() < 1 {
			t.Error("the PodDisruptionBudget lets no pod go: nodes could not be drained")
		}
	} else if len(r.pdbs) != 0 {
		t.Error("a PodDisruptionBudget although podDisruptionBudget.enabled is false")
	}
	if r.value("autoscaling.enabled") == true {
		if len(r.hpas) != 1 {
			t.Fatal("autoscaling.enabled but no HorizontalPodAutoscaler")
		}
		h := r.hpas[0].Spec
		if h.ScaleTargetRef.Kind != "Deployment" || h.ScaleTargetRef.Name != d.Name || h.ScaleTargetRef.APIVersion != "apps/v1" {
			t.Errorf("the HPA scales %v, want Deployment %s", h.ScaleTargetRef, d.Name)
		}
		if h.MinReplicas == nil || *h.MinReplicas < 2 || h.MaxReplicas < *h.MinReplicas {
			t.Errorf("the HPA's replicas %v..%d: want at least 2, up to max", h.MinReplicas, h.MaxReplicas)
		}
		if len(h.Metrics) == 0 || h.Metrics[0].Resource == nil || h.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Error("the HPA does not scale on CPU")
		}
		if d.Spec.Replicas != nil {
			t.Error("the Deployment sets replicas although the HPA owns them (each upgrade would reset them)")
		}
	} else {
		if len(r.hpas) != 0 {
			t.Error("an HPA although autoscaling.enabled is false")
		}
		if d.Spec.Replicas == nil || fmt.Sprint(*d.Spec.Replicas) != r.str("replicaCount") {
			t.Errorf("the Deployment's replicas are not replicaCount %s", r.str("replicaCount"))
		}
	}

	// Several replicas need shared storage: S3, or a claim all can mount.
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = int(*d.Spec.Replicas)
	}
	if r.value("autoscaling.enabled") == true {
		replicas = 2
	}
	if replicas > 1 && cfg.Store.Driver == "filesystem" {
		claim := volumes[mounts["indexes"].Name].PersistentVolumeClaim
		if claim == nil || r.pvcs[claim.ClaimName] == nil || !slices.Contains(r.pvcs[claim.ClaimName].Spec.AccessModes, corev1.ReadWriteMany) {
			t.Error("several replicas on a filesystem index store that is not ReadWriteMany")
		}
	}

	// Every Secret, ConfigMap and claim the pod refers to is rendered, or
	// declared in values as the user's (or cert-manager's).
	external := r.external()
	issued := map[string]bool{}
	for _, cert := range r.certificates {
		issued[cert.Spec.SecretName] = true
	}
	secretOK := func(name, where string) {
		if r.secrets[name] == nil && !external[name] && !issued[name] {
			t.Errorf("%s refers to Secret %q, which is neither rendered, nor issued by a Certificate, nor declared external in values", where, name)
		}
	}
	for _, v := range pod.Volumes {
		switch {
		case v.Secret != nil:
			secretOK(v.Secret.SecretName, "volume "+v.Name)
		case v.ConfigMap != nil:
			if r.configMaps[v.ConfigMap.Name] == nil {
				t.Errorf("volume %s refers to ConfigMap %q, which is not rendered", v.Name, v.ConfigMap.Name)
			}
		case v.PersistentVolumeClaim != nil:
			if r.pvcs[v.PersistentVolumeClaim.ClaimName] == nil && r.str("storage.filesystem.existingClaim") != v.PersistentVolumeClaim.ClaimName {
				t.Errorf("volume %s refers to claim %q, which is neither rendered nor storage.filesystem.existingClaim", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		case v.EmptyDir != nil:
		default:
			t.Errorf("volume %s: a kind the test does not check", v.Name)
		}
	}
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("mount %s at %s: no such volume", m.Name, m.MountPath)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secretOK(e.ValueFrom.SecretKeyRef.Name, "env "+e.Name)
		}
		if n := strings.ToUpper(e.Name); e.ValueFrom == nil && (strings.Contains(n, "PASSWORD") || strings.Contains(n, "SECRET")) {
			t.Errorf("env %s has its value inline: secrets come from Secrets", e.Name)
		}
	}
	for _, s := range pod.ImagePullSecrets {
		secretOK(s.Name, "imagePullSecrets")
	}
	for _, cert := range r.certificates {
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == cert.Spec.SecretName }) {
			t.Errorf("Certificate %s issues Secret %s, which the pod does not mount", cert.Metadata.Name, cert.Spec.SecretName)
		}
	}
}

// TestHelmFleet: the ci values (s3, Redis, TLS, htpasswd, 3 replicas)
// give the fleet of docs/scaling.md: index store and content cache on one
// bucket under two roots, Redis shared, keys and passwords from Secrets,
// a Certificate for the Service's name, at least 3 replicas.
func TestHelmFleet(t *testing.T) {
	t.Parallel()
	r := render(t, filepath.Join(chartDir, "ci", "s3-redis-tls-auth.yaml"))
	cfg, err := config.Parse(strings.NewReader(firstConfigMap(r).Data["config.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Driver != "s3" || cfg.Cache.Content.Driver != "s3" {
		t.Errorf("store.driver %q, cache.content.driver %q: want s3 both", cfg.Store.Driver, cfg.Cache.Content.Driver)
	}
	sp, cp := cfg.Store.Parameters, cfg.Cache.Content.Parameters
	if sp["bucket"] != cp["bucket"] || sp["regionendpoint"] != cp["regionendpoint"] || sp["rootdirectory"] == cp["rootdirectory"] {
		t.Errorf("store %v and content %v: want one bucket, two roots", sp, cp)
	}
	if len(cfg.Redis.Addrs) == 0 || cfg.TLS.Certificate == "" || cfg.Auth.Htpasswd == "" {
		t.Errorf("redis %v, tls %q, htpasswd %q: want all three", cfg.Redis.Addrs, cfg.TLS.Certificate, cfg.Auth.Htpasswd)
	}
	c := r.deployments[0].Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			env[e.Name] = e.ValueFrom.SecretKeyRef.Name
		}
	}
	for k, want := range map[string]string{"AWS_ACCESS_KEY_ID": "manifold-s3", "AWS_SECRET_ACCESS_KEY": "manifold-s3", "MANIFOLD_REDIS_PASSWORD": "manifold-redis"} {
		if env[k] != want {
			t.Errorf("env %s from Secret %q, want %q", k, env[k], want)
		}
	}
	if len(r.certificates) != 1 || !slices.Contains(r.certificates[0].Spec.DNSNames, r.services[0].Name+".registry.svc") {
		t.Errorf("Certificates %v: want one, naming the Service", r.certificates)
	}
	if h := r.hpas; len(h) != 1 || *h[0].Spec.MinReplicas < 3 {
		t.Error("want an HPA of at least 3 replicas")
	}
	if len(r.pvcs) != 0 {
		t.Errorf("claims %v on s3 storage", slices.Sorted(maps.Keys(r.pvcs)))
	}
}

// TestHelmDefaults: the defaults install without any Secret: one replica,
// plain HTTP, the index store on a claim the chart makes, no HPA.
func TestHelmDefaults(t *testing.T) {
	t.Parallel()
	r := render(t, "")
	if ext := r.external(); len(ext) != 0 {
		t.Errorf("the defaults need Secrets %v", ext)
	}
	if len(r.pvcs) != 1 || len(r.hpas) != 0 || len(r.certificates) != 0 {
		t.Errorf("%d claims, %d HPAs, %d Certificates; want 1, 0, 0", len(r.pvcs), len(r.hpas), len(r.certificates))
	}
	var b bytes.Buffer
	for _, v := range r.deployments[0].Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			fmt.Fprintf(&b, " %s", v.Name)
		}
	}
	if b.Len() > 0 {
		t.Errorf("the defaults mount Secret volumes:%s", b.String())
	}
}

func firstConfigMap(r *release) *corev1.ConfigMap {
	for _, k := range slices.Sorted(maps.Keys(r.configMaps)) {
		return r.configMaps[k]
	}
	return nil
}

// TestStrictDecode: the decoding render uses refuses a field the API type
// does not have, so a misspelt or misplaced key in a template fails
// TestHelmChart.
func TestStrictDecode(t *testing.T) {
	t.Parallel()
	doc := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: m}\nspec:\n  replicaz: 3\n")
	if err := yaml.UnmarshalStrict(doc, &appsv1.Deployment{}); err == nil || !strings.Contains(err.Error(), "replicaz") {
		t.Errorf("a Deployment with spec.replicaz decoded (error %v)", err)
	}
}
