package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// maxRedirects bounds the redirects a blob request follows (blob storage,
// CDNs); where each may lead is the transport's redirect policy
// (guard.go), decided on the resolved address.
const maxRedirects = 5

// OpenBlob GETs blob dgst of repo and returns its body, unread, and its
// size (-1 when the registry did not say). The caller verifies the bytes
// (the content cache hashes them as it stores them). A registry's error
// answer is a *transport.Error (see Status).
func (c *Client) OpenBlob(ctx context.Context, repo string, dgst v1.Hash) (io.ReadCloser, int64, error) {
	resp, err := c.blobRequest(ctx, http.MethodGet, repo, dgst)
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// HeadBlob asks whether repo holds blob dgst, and returns its size: the
// registry's own answer that the repository has it.
func (c *Client) HeadBlob(ctx context.Context, repo string, dgst v1.Hash) (int64, error) {
	resp, err := c.blobRequest(ctx, http.MethodHead, repo, dgst)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

func (c *Client) blobRequest(ctx context.Context, method, repo string, dgst v1.Hash) (*http.Response, error) {
	if err := nameCheck(repo); err != nil {
		return nil, err
	}
	rt, err := c.Transport(ctx, Scope(repo, "pull"))
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL("/v2/"+repo+"/blobs/"+dgst.String(), "").String(), nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: rt, CheckRedirect: func(_ *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return errors.New("too many redirects")
		}
		return nil
	}}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}
