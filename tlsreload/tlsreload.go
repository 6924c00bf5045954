package tlsreload

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	// DefaultInterval: the files are checked for changes at most once a
	// second.
	DefaultInterval = time.Second
	// DefaultMinVersion is TLS 1.2.
	DefaultMinVersion = tls.VersionTLS12
)

// Options configure a Reloader.
type Options struct {
	// Certificate is a PEM file: the server's certificate, then the
	// intermediates clients need. Required.
	Certificate string
	// Key is the PEM file of the certificate's private key (PKCS #8,
	// PKCS #1 or SEC 1). Required.
	Key string
	// ClientCAs is a PEM file of CA certificates; when set, every client
	// must present a certificate that chains to one of them (mutual
	// TLS), or the handshake fails. Default "": no client certificates.
	ClientCAs string
	// MinVersion is the lowest TLS version accepted. Default
	// DefaultMinVersion.
	MinVersion uint16
	// Interval: the files are checked for changes at most this often.
	// Default DefaultInterval.
	Interval time.Duration
	// Logger for reloads and for files that fail to load. Default: silent.
	Logger *slog.Logger
}

// Reloader serves the current certificate of its files. It is safe for
// concurrent use.
type Reloader struct {
	o       Options
	current atomic.Pointer[loaded]
	checked atomic.Int64 // UnixNano of the last check
	mu      sync.Mutex   // held by the one check under way
	warned  string       // the last failure logged, not repeated
}

// loaded is one successful read of the files.
type loaded struct {
	config *tls.Config
	leaf   *x509.Certificate
	files  []os.FileInfo // of Certificate, Key and ClientCAs, as read
}

// New reads the files and returns a Reloader serving them; an error names
// the file at fault and what is wrong with it.
func New(o Options) (*Reloader, error) {
	switch {
	case o.Certificate == "":
		return nil, errors.New("certificate: required")
	case o.Key == "":
		return nil, errors.New("key: required")
	}
	if o.MinVersion == 0 {
		o.MinVersion = DefaultMinVersion
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{o: o}
	l, err := r.load()
	if err != nil {
		return nil, err
	}
	r.current.Store(l)
	r.checked.Store(time.Now().UnixNano())
	r.logLoaded("TLS certificate loaded", l)
	return r, nil
}

// Config is the configuration to serve with (http.Server.TLSConfig):
// HTTP/2 and HTTP/1.1 offered, each handshake given the current
// certificate.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: r.o.MinVersion,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			r.maybeCheck()
			return r.current.Load().config, nil
		},
	}
}

// Leaf is the certificate served now.
func (r *Reloader) Leaf() *x509.Certificate { return r.current.Load().leaf }

// maybeCheck checks the files when Interval has passed since the last
// check and no other handshake is checking them; the others go on with the
// current certificate.
func (r *Reloader) maybeCheck() {
	if time.Now().UnixNano()-r.checked.Load() < int64(r.o.Interval) || !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	r.checked.Store(time.Now().UnixNano())
	cur := r.current.Load()
	if unchanged(cur.files, r.paths()) {
		return
	}
	l, err := r.load()
	if err != nil {
		if msg := err.Error(); msg != r.warned {
			r.warned = msg
			r.o.Logger.Warn("TLS files changed but do not load; serving the current certificate", "error", msg, "serial", cur.leaf.SerialNumber.Text(16))
		}
		return
	}
	r.warned = ""
	r.current.Store(l)
	r.logLoaded("TLS certificate reloaded", l)
}

func (r *Reloader) paths() []string {
	p := []string{r.o.Certificate, r.o.Key}
	if r.o.ClientCAs != "" {
		p = append(p, r.o.ClientCAs)
	}
	return p
}

// unchanged reports whether every file at paths is the one seen before.
func unchanged(seen []os.FileInfo, paths []string) bool {
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		if !os.SameFile(fi, seen[i]) || !fi.ModTime().Equal(seen[i].ModTime()) || fi.Size() != seen[i].Size() {
			return false
		}
	}
	return true
}

func (r *Reloader) logLoaded(msg string, l *loaded) {
	attrs := []any{"subject", l.leaf.Subject.String(), "serial", l.leaf.SerialNumber.Text(16), "notAfter", l.leaf.NotAfter.UTC().Format(time.RFC3339), "clientCAs", r.o.ClientCAs != ""}
	r.o.Logger.Info(msg, attrs...)
	if now := time.Now(); now.After(l.leaf.NotAfter) || now.Before(l.leaf.NotBefore) {
		r.o.Logger.Warn("the TLS certificate is not valid now: clients will refuse it", append(attrs, "notBefore", l.leaf.NotBefore.UTC().Format(time.RFC3339))...)
	}
}

// load reads the files. Each is stat'ed before it is read, so a change
// after the stat is seen by the next check.
func (r *Reloader) load() (*loaded, error) {
	var files []os.FileInfo
	roles := []string{"certificate", "key", "clientCAs"}
	contents := make([][]byte, 0, 3)
	for i, p := range r.paths() {
		fi, err := os.Stat(p)
		if err == nil {
			var b []byte
			b, err = os.ReadFile(p)
			contents = append(contents, b)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", roles[i], err)
		}
		files = append(files, fi)
	}
	cert, leaf, err := keyPair(r.o.Certificate, r.o.Key, contents[0], contents[1])
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   r.o.MinVersion,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if r.o.ClientCAs != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(contents[2]) {
			return nil, fmt.Errorf("clientCAs: %s holds no PEM certificate", r.o.ClientCAs)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return &loaded{config: cfg, leaf: leaf, files: files}, nil
}

// keyPair parses a certificate chain and its key, saying which file is at
// fault.
func keyPair(certPath, keyPath string, certPEM, keyPEM []byte) (tls.Certificate, *x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, nil, fmt.Errorf("certificate: %s holds no PEM certificate (it should start with -----BEGIN CERTIFICATE-----)", certPath)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certificate: %s: %w", certPath, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || parseKey(kb.Bytes) == nil {
		return tls.Certificate{}, nil, fmt.Errorf("key: %s holds no PEM private key", keyPath)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("key: %s is not the key of certificate %s (%w)", keyPath, certPath, err)
	}
	return cert, leaf, nil
}

// parseKey is the private key in der, in any of the encodings crypto/tls
// accepts, or nil.
func parseKey(der []byte) crypto.PrivateKey {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k
	}
	return nil
}
