package cli

import (
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/repo"
)

// TestPullSettingsFromRemote: the remote's strata keys reach the pull
// options (cross-host redirects, size cap, inflate ratio), and a remote
// without them keeps the library's defaults.
func TestPullSettingsFromRemote(t *testing.T) {
	t.Parallel()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, name := range []string{"plain", "tuned"} {
		if err := r.AddRemote(repo.Remote{Name: name, URL: "https://example.test/repo"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := r.Config()
	cfg.Set(`remote "tuned"`, "allow-cross-host-redirects", "true")
	cfg.Set(`remote "tuned"`, "max-content-size", "1048576")
	cfg.Set(`remote "tuned"`, "max-inflate-ratio", "-1")
	if err := r.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		remote string
		want   pull.Options
	}{
		{"plain", pull.Options{}},
		{"tuned", pull.Options{AllowCrossHostRedirects: true, MaxContentSize: 1 << 20, MaxInflateRatio: -1}},
	} {
		opts := pull.Options{Remote: tt.remote, Refs: []string{"os/stable"}}
		policy, err := pull.PolicyFromRemote(r, tt.remote, nil, true)
		if err != nil {
			t.Fatalf("PolicyFromRemote(%s) = %v", tt.remote, err)
		}
		policy.Apply(&opts)
		if opts.AllowCrossHostRedirects != tt.want.AllowCrossHostRedirects || opts.MaxContentSize != tt.want.MaxContentSize || opts.MaxInflateRatio != tt.want.MaxInflateRatio {
			t.Errorf("PolicyFromRemote(%s) = redirects %v, size %d, ratio %d; want %v, %d, %d", tt.remote,
				opts.AllowCrossHostRedirects, opts.MaxContentSize, opts.MaxInflateRatio,
				tt.want.AllowCrossHostRedirects, tt.want.MaxContentSize, tt.want.MaxInflateRatio)
		}
	}
}
