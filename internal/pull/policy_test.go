package pull

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

// TestPolicyFromRemote pulls through the policy a remote's config gives:
// the remote's URL, its keys (inline or in a file) unless the caller
// gives some, sign-verify-summary, and a refusal without any key.
func TestPolicyFromRemote(t *testing.T) {
	t.Parallel()
	good, other := testKey(t, 1), testKey(t, 2)
	src := newRepo(t, repo.ModeArchive)
	c := buildCommit(t, src, commitSpec{Ref: "os/stable", Tree: testTree("1")})
	signCommit(t, src, c, good)
	summarize(t, src)
	srv := newServer(t, src)
	keyFile := filepath.Join(t.TempDir(), "trusted.ed25519")
	if err := os.WriteFile(keyFile, []byte(good.Public().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		remote   repo.Remote
		summary  string // sign-verify-summary value, "" for none
		keys     []sign.PublicKey
		noVerify bool
		wantErr  error // from PolicyFromRemote
		pullErr  error // from the pull with that policy
	}{
		{name: "inline key", remote: repo.Remote{Ed25519Key: good.Public().String()}},
		{name: "key file", remote: repo.Remote{Ed25519File: keyFile}},
		{name: "caller keys replace the remote's", remote: repo.Remote{Ed25519Key: good.Public().String()},
			keys: []sign.PublicKey{other.Public()}, pullErr: sign.ErrUntrusted},
		{name: "remote key untrusted", remote: repo.Remote{Ed25519Key: other.Public().String()}, pullErr: sign.ErrUntrusted},
		{name: "no key", wantErr: ErrNoTrustedKey},
		{name: "no verify", noVerify: true},
		{name: "signed summary required", remote: repo.Remote{Ed25519Key: good.Public().String()}, summary: "true",
			pullErr: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := newRepo(t, repo.ModeBareUser)
			rm := tt.remote
			rm.Name, rm.URL = "origin", srv.URL
			if err := dst.AddRemote(rm); err != nil {
				t.Fatal(err)
			}
			if tt.summary != "" {
				cfg := dst.Config()
				cfg.Set(`remote "origin"`, "sign-verify-summary", tt.summary)
				if err := dst.SetConfig(cfg); err != nil {
					t.Fatal(err)
				}
			}
			p, err := PolicyFromRemote(dst, "origin", tt.keys, tt.noVerify)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("PolicyFromRemote(origin) error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if p.URL != srv.URL || p.NoVerify != tt.noVerify || (p.Verifier == nil) != tt.noVerify {
				t.Fatalf("PolicyFromRemote(origin) = %+v, want URL %s, NoVerify %v and a verifier unless NoVerify", p, srv.URL, tt.noVerify)
			}
			opts := Options{Remote: "origin", Refs: []string{"os/stable"}, Retry: fastRetry}
			p.Apply(&opts)
			res, err := Pull(context.Background(), dst, opts)
			if tt.pullErr != nil {
				if !errors.Is(err, tt.pullErr) {
					t.Fatalf("Pull with the policy: error = %v, want %v", err, tt.pullErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pull with the policy: %v", err)
			}
			if got := res.Refs[0].Commit; got != c {
				t.Errorf("Pull with the policy moved origin:os/stable to %s, want %s", got, c)
			}
		})
	}
}

// TestPolicyFromRemoteErrors: an unknown remote, an empty pull by URL.
func TestPolicyFromRemoteErrors(t *testing.T) {
	t.Parallel()
	r := newRepo(t, repo.ModeArchive)
	if _, err := PolicyFromRemote(r, "nowhere", nil, false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("PolicyFromRemote(nowhere) error = %v, want ErrNotFound", err)
	}
	if _, err := PolicyFromRemote(r, "", nil, false); !errors.Is(err, ErrNoTrustedKey) {
		t.Errorf("PolicyFromRemote(\"\") without keys: error = %v, want ErrNoTrustedKey", err)
	}
	k := testKey(t, 3)
	p, err := PolicyFromRemote(r, "", []sign.PublicKey{k.Public()}, false)
	if err != nil || p.URL != "" || p.Verifier == nil {
		t.Errorf("PolicyFromRemote(\"\", key) = %+v, %v; want a verifier and no URL", p, err)
	}
}

// TestRemoteRefs lists the refs of a remote's summary, verified with the
// pull's verifier; a remote without a summary lists none.
func TestRemoteRefs(t *testing.T) {
	t.Parallel()
	k := testKey(t, 4)
	src := newRepo(t, repo.ModeArchive)
	for _, ref := range []string{"os/stable", "os/testing"} {
		buildCommit(t, src, commitSpec{Ref: ref, Tree: testTree(ref)})
	}
	bare := newServer(t, src)
	if _, err := RemoteRefs(context.Background(), newRepo(t, repo.ModeBareUser), pullOpts(bare.URL)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("RemoteRefs(no summary) error = %v, want ErrNotFound", err)
	}
	summarize(t, src, k)
	opts := pullOpts(bare.URL)
	opts.NoVerify, opts.Verifier = false, verifierFor(k)
	got, err := RemoteRefs(context.Background(), newRepo(t, repo.ModeBareUser), opts)
	if err != nil || strings.Join(got, ",") != "os/stable,os/testing" {
		t.Errorf("RemoteRefs(signed summary) = %v, %v; want os/stable, os/testing", got, err)
	}
	opts.Verifier = verifierFor(testKey(t, 5))
	if _, err := RemoteRefs(context.Background(), newRepo(t, repo.ModeBareUser), opts); !errors.Is(err, sign.ErrUntrusted) {
		t.Errorf("RemoteRefs(summary signed by another key) error = %v, want ErrUntrusted", err)
	}
}
