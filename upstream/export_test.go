package upstream

import "net/netip"

// AssumePublic makes c's redirect policy treat its upstream as a public
// registry, though tests run it on loopback.
func AssumePublic(c *Client) { c.guard.public = true }

// AddressClass is how the redirect policy sees addr: "forbidden",
// "internal" or "public".
func AddressClass(addr string) string {
	ip := netip.MustParseAddr(addr)
	switch {
	case forbiddenAddr(ip):
		return "forbidden"
	case internalAddr(ip):
		return "internal"
	}
	return "public"
}
