package proxy_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
)

// TestPushManifestLimit: Options.MaxManifestBytes caps manifests pushed
// through the proxy too, not only the members it reads: one byte over is
// MANIFEST_INVALID, the limit itself is accepted.
func TestPushManifestLimit(t *testing.T) {
	t.Parallel()
	img := mutate.Annotations(regtest.PlatformImage(t, "linux/amd64", true), map[string]string{"pad": strings.Repeat("x", 8192)}).(v1.Image)
	size, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *proxy.Options) { o.MaxManifestBytes = size - 1 })
	if err := remote.Write(regtest.Ref(t, e.host+"/team/app:big"), img); err == nil || !strings.Contains(err.Error(), "MANIFEST_INVALID") {
		t.Errorf("push of %d bytes with a limit of %d: %v", size, size-1, err)
	}
	at := strings.TrimPrefix(e.newProxy(func(o *proxy.Options) { o.MaxManifestBytes = size }).URL, "http://")
	if err := remote.Write(regtest.Ref(t, at+"/team/app:big"), img); err != nil {
		t.Errorf("push of %d bytes with a limit of %d: %v", size, size, err)
	}
}
