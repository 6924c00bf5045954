package embedded_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/embedded"
)

// BenchmarkBlob reads a 64 MiB blob from the embedded registry over its
// loopback port and over the private in-memory transport `proxy serve`
// uses: the in-memory path must not be the bottleneck of a pull.
func BenchmarkBlob(b *testing.B) {
	for _, private := range []bool{false, true} {
		name := "tcp"
		if private {
			name = "private"
		}
		b.Run(name, func(b *testing.B) {
			reg, err := embedded.Start(context.Background(), embedded.Options{Private: private})
			if err != nil {
				b.Fatal(err)
			}
			defer reg.Close(context.Background())
			size := int64(64 << 20)
			if testing.Short() {
				size = 4 << 20 // the CI smoke run
			}
			layer, err := random.Layer(size, "application/octet-stream")
			if err != nil {
				b.Fatal(err)
			}
			d, _ := layer.Digest()
			repo, _ := nameRepo(reg.URL)
			if err := remote.WriteLayer(repo, layer, remote.WithTransport(reg.Transport)); err != nil {
				b.Fatal(err)
			}
			client := &http.Client{Transport: reg.Transport}
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				resp, err := client.Get(reg.URL + "/v2/bench/blobs/" + d.String())
				if err != nil || resp.StatusCode != 200 {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

func nameRepo(url string) (name.Repository, error) {
	return name.NewRepository(url[len("http://"):]+"/bench", name.Insecure)
}
