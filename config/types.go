package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/upstream"
)

// The value types below parse their text once, when the file, a
// variable or a flag is read, so that a Config holds only valid values and
// Validate is left with what involves several fields. Each is a
// TextUnmarshaler; an empty text is the zero value, which stands for the
// field's default.

// Duration is a Go duration: "30s", "5m", "1h30m". It is never negative.
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\": %w", err)
	}
	if v < 0 {
		return fmt.Errorf("%q: must not be negative", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String is the shortest form of the duration: "5m", not "5m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// Platform is os/arch[/variant], parsed by platform.Parse: a known os/arch
// pair and a real variant of the arch, normalized as index entries write
// it (linux/arm64 is linux/arm64/v8, linux/arm is linux/arm/v7).
type Platform v1.Platform

// UnmarshalText parses a platform.
func (p *Platform) UnmarshalText(b []byte) error {
	v, err := platform.Parse(string(b))
	if err != nil {
		return err
	}
	*p = Platform(v)
	return nil
}

// MarshalText writes os/arch[/variant].
func (p Platform) MarshalText() ([]byte, error) {
	if p.OS == "" {
		return nil, nil
	}
	return []byte(platform.String(v1.Platform(p))), nil
}

// BareTagPolicy is what a bare tag with per-platform members serves: merge,
// override, fallback or off (index.ParsePolicy).
type BareTagPolicy index.Policy

// UnmarshalText parses a policy name.
func (p *BareTagPolicy) UnmarshalText(b []byte) error {
	v, err := index.ParsePolicy(string(b))
	if err != nil {
		return err
	}
	*p = BareTagPolicy(v)
	return nil
}

// MarshalText writes the policy name.
func (p BareTagPolicy) MarshalText() ([]byte, error) { return []byte(p), nil }

// Pattern is a path.Match pattern on repository names, such as "legacy/*"
// ("*" does not cross a "/").
type Pattern string

// UnmarshalText checks the pattern's syntax.
func (p *Pattern) UnmarshalText(b []byte) error {
	if _, err := path.Match(string(b), ""); err != nil {
		return fmt.Errorf("%q: %w", b, err)
	}
	*p = Pattern(b)
	return nil
}

// Address is host:port to listen on; an empty host is every interface
// (":5000").
type Address string

// UnmarshalText checks the host:port form.
func (a *Address) UnmarshalText(b []byte) error {
	if _, _, err := net.SplitHostPort(string(b)); err != nil {
		return fmt.Errorf("%q is not host:port: %v", b, err)
	}
	*a = Address(b)
	return nil
}

// RegistryURL is a registry's URL: http://host[:port] (plain HTTP) or
// https://host[:port], without a path.
type RegistryURL string

// UnmarshalText checks the scheme, the host and the absence of a path.
func (r *RegistryURL) UnmarshalText(b []byte) error {
	u, err := url.Parse(string(b))
	shown := upstream.Redact(string(b)) // never echo credentials
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return fmt.Errorf("%q: want http://host[:port] or https://host[:port]", shown)
	case u.User != nil:
		return fmt.Errorf("%q: credentials do not go in the URL: set username and password or passwordFile", shown)
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("%q: a registry URL has no path", shown)
	}
	*r = RegistryURL(b)
	return nil
}

// URL is an absolute URL, such as https://auth.example.com/token.
type URL string

// UnmarshalText checks that the URL has a scheme and a host.
func (r *URL) UnmarshalText(b []byte) error {
	if u, err := url.Parse(string(b)); err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%q: want an absolute URL such as https://auth.example.com/token", upstream.Redact(string(b)))
	}
	*r = URL(b)
	return nil
}

// LogFormat is text (slog's key=value lines) or json (one object a line).
type LogFormat string

// The log formats.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// UnmarshalText checks the format name.
func (f *LogFormat) UnmarshalText(b []byte) error {
	switch v := LogFormat(b); v {
	case LogText, LogJSON:
		*f = v
		return nil
	}
	return fmt.Errorf("%q: want text or json", b)
}

// Size is a number of bytes, such as 4194304 (4 MiB). It is never negative.
type Size int64

// UnmarshalText parses a decimal number of bytes.
func (s *Size) UnmarshalText(b []byte) error { return parseCount(b, s) }

// Count is a number of things, such as 8. It is never negative.
type Count int

// UnmarshalText parses a decimal number.
func (c *Count) UnmarshalText(b []byte) error { return parseCount(b, c) }

func parseCount[T ~int | ~int64](b []byte, v *T) error {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("%q: want a whole number", b)
	}
	if n < 0 {
		return fmt.Errorf("%d: must not be negative", n)
	}
	if int64(T(n)) != n {
		return fmt.Errorf("%d: too large", n)
	}
	*v = T(n)
	return nil
}

// TLSVersion is a TLS protocol version: "1.2" or "1.3". (1.0 and 1.1 are
// not offered: every registry client speaks 1.2.)
type TLSVersion string

// UnmarshalText checks the version.
func (v *TLSVersion) UnmarshalText(b []byte) error {
	switch s := TLSVersion(b); s {
	case "1.2", "1.3":
		*v = s
		return nil
	}
	return fmt.Errorf("%q: want 1.2 or 1.3", b)
}

// MarshalText writes the version.
func (v TLSVersion) MarshalText() ([]byte, error) { return []byte(v), nil }

// Uint16 is the version as crypto/tls numbers it (tls.VersionTLS12), or 0
// for the zero value.
func (v TLSVersion) Uint16() uint16 {
	switch v {
	case "1.2":
		return tls.VersionTLS12
	case "1.3":
		return tls.VersionTLS13
	}
	return 0
}

// Registry names a registry as image references write it — docker.io,
// ghcr.io, registry.example.com:5000 — or is "*", any registry. Docker
// Hub's other hosts (index.docker.io, registry-1.docker.io) are read as
// docker.io.
type Registry string

// AnyRegistry is the Registry that stands for every registry.
const AnyRegistry Registry = "*"

// UnmarshalText checks the name and stores its canonical form.
func (r *Registry) UnmarshalText(b []byte) error {
	if Registry(b) == AnyRegistry {
		*r = AnyRegistry
		return nil
	}
	s, err := upstream.ParseRegistry(string(b))
	if err != nil {
		return err
	}
	*r = Registry(s)
	return nil
}

// MarshalText writes the name.
func (r Registry) MarshalText() ([]byte, error) { return []byte(r), nil }
