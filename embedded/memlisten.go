package embedded

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
)

// memListener is a net.Listener with no address anyone can reach: its
// connections are made in memory, by Dial, so only code holding the
// Registry (the proxy) talks to the registry.
type memListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr{} }

// Dial makes a connection to the listener.
func (l *memListener) Dial(ctx context.Context) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, errors.New("embedded registry: closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return PrivateHost }

// PrivateHost is the host name of a private embedded registry: a reserved
// name (RFC 2606 .invalid) that resolves nowhere; only Registry.Transport
// reaches it.
const PrivateHost = "embedded.invalid"

// transport dials l whatever the address asked for.
func (l *memListener) transport() http.RoundTripper {
	return &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return l.Dial(ctx) },
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}
