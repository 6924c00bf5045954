package config

import "errors"

// Content configures the pull-through content cache: blobs and manifests
// by digest, kept as they are served, so that what was pulled keeps
// pulling when an upstream is down or rate-limited (docs/content-cache.md).
type Content struct {
	// Enabled keeps content pulled through the upstreams. Default true; it
	// is off with the embedded registry (no upstream configured), whose
	// content is local already.
	Enabled *bool `json:"enabled"`
	// MaxBytes bounds the content kept; the least recently used goes
	// first. Default 10737418240 (10 GiB, content.DefaultMaxBytes).
	MaxBytes Size `json:"maxBytes"`
	// Driver is a distribution storage driver name (filesystem, inmemory,
	// s3, gcs, azure), as in distribution's configuration. Default:
	// filesystem, rootdirectory "<dataDir>/content".
	Driver string `json:"driver"`
	// Parameters of the driver; filesystem needs rootdirectory. Default:
	// none.
	Parameters map[string]any `json:"parameters"`
}

func (c Content) validate() []error {
	var errs []error
	if c.Driver == "" && len(c.Parameters) > 0 {
		errs = append(errs, errors.New("cache.content.driver: required with cache.content.parameters"))
	}
	if c.Driver == "filesystem" && c.Parameters["rootdirectory"] == nil {
		errs = append(errs, errors.New("cache.content.parameters.rootdirectory: required with driver filesystem"))
	}
	return errs
}
