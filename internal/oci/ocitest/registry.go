// Package ocitest starts Debian's docker-registry for tests that need a real registry.
// Test helper: imported by _test.go files only.
package ocitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/crypto/bcrypt"
)

// Registry is Debian's docker-registry (the CNCF distribution registry) serving
// filesystem storage on loopback, with TLS and htpasswd auth when asked.
type Registry struct {
	Host   string // 127.0.0.1:PORT
	CADir  string // holds ca.crt (skopeo's --cert-dir)
	CAFile string
	Auth   string // auth.json with the test user's credentials
}

// StartRegistry starts the registry on a free loopback port, with TLS (a self-signed
// certificate for 127.0.0.1) and htpasswd auth (user tester, password secret) when secure,
// and stops it when the test ends.
func StartRegistry(t testing.TB, secure bool) *Registry {
	t.Helper()
	bin := testutil.RequireTool(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	pr := &Registry{Host: host}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), host)
	if secure {
		pr.CADir = filepath.Join(dir, "certs")
		pr.CAFile = filepath.Join(pr.CADir, "ca.crt")
		key := filepath.Join(dir, "server.key")
		WriteCert(t, pr.CAFile, key)
		hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte("tester:"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\nauth:\n  htpasswd:\n    realm: strata-test\n    path: %s\n", pr.CAFile, key, htpasswd)
		pr.Auth = filepath.Join(dir, "auth.json")
		// base64("tester:secret")
		if err := os.WriteFile(pr.Auth, []byte(`{"auths":{"`+host+`":{"auth":"dGVzdGVyOnNlY3JldA=="}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The registry logs every 404 of a HEAD request before an upload as an error: its log
	// is shown only when the test fails.
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("docker-registry's log:\n%s", b)
		}
	})
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return pr
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s: %v", host, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a child process's port; no event to wait on
	}
}

// WriteCert writes a self-signed certificate for 127.0.0.1 and its key.
func WriteCert(t testing.TB, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
