package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync/atomic"
	"syscall"
)

// The redirect policy of every upstream read, decided where it cannot be
// fooled: on the address a connection is about to be made to (a dialer
// Control hook), after name resolution, for the proxy's own requests and
// for the redirects go-containerregistry follows alike.
//
//   - The configured upstream host is always dialed.
//   - Any other host is a redirect target an upstream answer chose (blob
//     storage, a CDN): it must not be a link-local, unspecified or multicast
//     address (cloud metadata services live there), and it may be a
//     loopback or private address (RFC 1918, CGNAT, IPv6 ULA, or the
//     IPv4-mapped forms of these) only when the upstream itself is one — an
//     internal registry may send blobs to internal storage; a public one may
//     not steer the proxy into the network it runs in.
//   - A request over plain HTTP to another host is refused when the
//     upstream is spoken to over HTTPS: a redirect never downgrades.

// ErrRedirectRefused is wrapped by the error of a connection or request the
// redirect policy refused.
var ErrRedirectRefused = errors.New("refused by the redirect policy")

type guard struct {
	host, scheme string // the upstream's host[:port] and scheme
	proxy        string // host:port of the HTTP proxy the environment names for it, if any
	// internal records whether the upstream's own address was loopback or
	// private, learned when it was dialed.
	internal atomic.Bool
	// public makes the policy treat the upstream as public whatever its
	// address (tests, whose upstreams are all on loopback).
	public bool
}

// internalAddr reports whether ip is loopback or in a private range.
func internalAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || netip.MustParsePrefix("100.64.0.0/10").Contains(ip)
}

// forbiddenAddr reports whether ip is never a redirect target.
func forbiddenAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || netip.MustParsePrefix("0.0.0.0/8").Contains(ip)
}

// dialer wraps d: the upstream host is dialed as is (and whether its
// address is internal is recorded); any other host only at an address the
// policy allows.
func (g *guard) dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	upstream := *d
	upstream.Control = func(_, address string, _ syscall.RawConn) error {
		if ap, err := netip.ParseAddrPort(address); err == nil && internalAddr(ap.Addr()) && !g.public {
			g.internal.Store(true)
		}
		return nil
	}
	other := *d
	other.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("redirect target %s: %w", address, ErrRedirectRefused)
		}
		ip := ap.Addr()
		switch {
		case forbiddenAddr(ip):
			return fmt.Errorf("redirect target %s is a link-local, unspecified or multicast address: %w", ip, ErrRedirectRefused)
		case internalAddr(ip) && !g.internal.Load():
			return fmt.Errorf("redirect from a public upstream to the internal address %s: %w", ip, ErrRedirectRefused)
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == g.hostPort() || (g.proxy != "" && addr == g.proxy) {
			return upstream.DialContext(ctx, network, addr)
		}
		return other.DialContext(ctx, network, addr)
	}
}

// hostPort is the upstream's host:port as the transport dials it.
func (g *guard) hostPort() string {
	if _, _, err := net.SplitHostPort(g.host); err == nil {
		return g.host
	}
	if g.scheme == "https" {
		return net.JoinHostPort(g.host, "443")
	}
	return net.JoinHostPort(g.host, "80")
}

// guardTransport refuses plain-HTTP requests when the upstream is HTTPS,
// and HTTPS to an upstream configured as plain HTTP.
type guardTransport struct {
	inner http.RoundTripper
	g     *guard
}

func (t *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.g.scheme == "https" && req.URL.Scheme != "https" {
		return nil, fmt.Errorf("request to %s leaves HTTPS: %w", req.URL.Redacted(), ErrRedirectRefused)
	}
	if t.g.scheme == "http" && req.URL.Scheme == "https" && req.URL.Host == t.g.host {
		// go-containerregistry's ping tries HTTPS first even for a
		// registry configured as http://: answer at once rather than
		// shake hands with a plain-HTTP port (which a hanging upstream
		// would hold for the whole TLS handshake timeout).
		return nil, fmt.Errorf("%s is configured as http://", t.g.host)
	}
	return t.inner.RoundTrip(req)
}

// envProxy is the host:port of the HTTP(S) proxy the environment
// (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) names for the upstream u, or "".
func envProxy(u *url.URL) string {
	p, err := http.ProxyFromEnvironment(&http.Request{URL: u})
	if err != nil || p == nil {
		return ""
	}
	if _, _, err := net.SplitHostPort(p.Host); err == nil {
		return p.Host
	}
	if p.Scheme == "https" {
		return net.JoinHostPort(p.Host, "443")
	}
	return net.JoinHostPort(p.Host, "80")
}
