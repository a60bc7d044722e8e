package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/strata-os/strata/internal/errdefs"
)

// Transport is where an image lives, as skopeo and bootc spell it.
type Transport string

const (
	TransportRegistry   Transport = "docker"      // docker://HOST/NAME:TAG
	TransportLayout     Transport = "oci"         // oci:DIR[:TAG]
	TransportOCIArchive Transport = "oci-archive" // oci-archive:FILE[:TAG]
)

// Ref is a parsed image reference.
type Ref struct {
	Transport Transport
	// Name is the registry reference (docker) or the directory or file (oci, oci-archive).
	Name string
	// Tag names the image inside a layout or archive (annotation
	// org.opencontainers.image.ref.name); "" means the only image there.
	Tag string
}

func (r Ref) String() string {
	if r.Transport == TransportRegistry {
		return "docker://" + r.Name
	}
	if r.Tag != "" {
		return string(r.Transport) + ":" + r.Name + ":" + r.Tag
	}
	return string(r.Transport) + ":" + r.Name
}

// ParseRef parses docker://HOST/NAME[:TAG|@DIGEST], oci:DIR[:TAG] and oci-archive:FILE[:TAG].
func ParseRef(s string) (Ref, error) {
	if rest, ok := strings.CutPrefix(s, "docker://"); ok {
		if rest == "" {
			return Ref{}, fmt.Errorf("image reference %q: empty registry reference: %w", s, errdefs.ErrInvalid)
		}
		return Ref{Transport: TransportRegistry, Name: rest}, nil
	}
	for _, t := range []Transport{TransportOCIArchive, TransportLayout} {
		rest, ok := strings.CutPrefix(s, string(t)+":")
		if !ok {
			continue
		}
		p, tag := rest, ""
		// The tag is what follows the last colon, unless it looks like a path.
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
			p, tag = rest[:i], rest[i+1:]
		}
		if p == "" {
			return Ref{}, fmt.Errorf("image reference %q: empty path: %w", s, errdefs.ErrInvalid)
		}
		return Ref{Transport: t, Name: p, Tag: tag}, nil
	}
	return Ref{}, fmt.Errorf("image reference %q: want docker://, oci: or oci-archive: %w", s, errdefs.ErrInvalid)
}

// RegistryOptions say how to reach a registry.
type RegistryOptions struct {
	// Insecure allows plain HTTP and certificates that do not verify (crane's --insecure).
	// Without it every request is HTTPS with a verified certificate, loopback included.
	Insecure bool
	// CAFile is a PEM file of certificate authorities trusted besides the system's.
	CAFile string
	// Keychain finds credentials; nil means the usual files: $REGISTRY_AUTH_FILE,
	// containers/auth.json and ~/.docker/config.json.
	Keychain authn.Keychain
	// Jobs bounds parallel blob transfers; 0 means 4.
	Jobs int
}

func (o RegistryOptions) nameOptions() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (o RegistryOptions) remoteOptions(ctx context.Context) ([]remote.Option, error) {
	rt, err := o.transport()
	if err != nil {
		return nil, err
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(kc),
		remote.WithJobs(jobs),
		remote.WithUserAgent("strata"),
	}, nil
}

// transport is the HTTP transport to registries: TLS 1.2 or later with the system's and
// CAFile's authorities, plain HTTP refused unless Insecure.
func (o RegistryOptions) transport() (http.RoundTripper, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate: %w", o.CAFile, errdefs.ErrInvalid)
		}
		tc.RootCAs = pool
	}
	if o.Insecure {
		tc.InsecureSkipVerify = true
	}
	base.TLSClientConfig = tc
	if !o.Insecure {
		return httpsOnly{base}, nil
	}
	return base, nil
}

// httpsOnly refuses plain HTTP. go-containerregistry falls back to HTTP for loopback and
// private addresses on its own; strata does so only with --insecure.
type httpsOnly struct{ next http.RoundTripper }

func (h httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return nil, fmt.Errorf("plain HTTP to %s refused without --insecure: %w", req.URL.Host, errdefs.ErrFailedPrecondition)
	}
	return h.next.RoundTrip(req)
}
