//go:build root

package provision_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/provision"
	"github.com/strata-os/strata/internal/testutil"
)

// goodPart is valid content that each bad config carries too: had Apply touched the tree
// before finding the fault, these would be there.
const goodPart = `"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA k"]}]},
 "systemd":{"units":[{"name":"app.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n"}]}`

// TestApplyBadInput checks that a config that cannot be applied fails with an error naming
// its config path and leaves the tree exactly as it was.
func TestApplyBadInput(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name    string
		storage string
		setup   func(t *testing.T, root string)
		class   error
		want    string
	}{
		{"a hash mismatch", `{"files":[{"path":"/etc/a","contents":{"source":"data:,x"}},{"path":"/etc/b","contents":{"source":"data:,tampered","verification":{"hash":"sha256-2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}}}]}`, nil,
			errdefs.ErrCorrupt, "$.storage.files.1.contents.verification.hash: content has sha256-"},
		{"an unreachable URL", `{"files":[{"path":"/etc/a","contents":{"source":"data:,x"}},{"path":"/etc/b","contents":{"source":"http://127.0.0.1:9/config"}}]}`, nil,
			errdefs.ErrUnavailable, "$.storage.files.1.contents.source: fetching http://127.0.0.1:9/config: "},
		{"an unsupported scheme", `{"files":[{"path":"/etc/b","contents":{"source":"tftp://h/x"}}]}`, nil,
			errdefs.ErrUnsupported, `$.storage.files.0.contents.source: URL scheme "tftp"`},
		{"an existing file without overwrite", `{"files":[{"path":"/etc/a","contents":{"source":"data:,x"}},{"path":"/etc/motd","contents":{"source":"data:,x"}}]}`, nil,
			errdefs.ErrAlreadyExists, "$.storage.files.1: /etc/motd exists and overwrite is false"},
		{"an owner that does not exist", `{"files":[{"path":"/etc/a","user":{"name":"nobody-here"}}]}`, nil,
			errdefs.ErrNotFound, `$.storage.files.0.user.name: user "nobody-here" does not exist`},
		{"a full disk", `{"files":[{"path":"/etc/a","contents":{"source":"data:,x"}},{"path":"/var/big","contents":{"source":"data:;base64,` + strings.Repeat("AAAA", 1<<20) + `"}}]}`,
			func(t *testing.T, root string) {
				testutil.RequireTool(t, "mount", "mount")
				if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", filepath.Join(root, "var")).CombinedOutput(); err != nil {
					t.Fatalf("mount tmpfs: %v: %s", err, out)
				}
				t.Cleanup(func() { exec.Command("umount", filepath.Join(root, "var")).Run() })
			}, errdefs.ErrFailedPrecondition, "$.storage: the config writes about 4194304 bytes to the filesystem of /var/big, which has 2097152 free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t)
			if tt.setup != nil {
				tt.setup(t, root)
			}
			before := snapshot(t, root)
			raw := []byte(`{"ignition":{"version":"3.3.0"},"storage":` + tt.storage + `,` + goodPart + `}`)
			cfg, rpt, err := provconfig.ParseJSON(raw)
			if err != nil {
				t.Fatalf("ParseJSON: %v\n%s", err, rpt)
			}
			_, err = provision.Apply(context.Background(), root, cfg, provision.Options{})
			if !errors.Is(err, tt.class) || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply error = %v, want %v containing %q", err, tt.class, tt.want)
			}
			if diff := diffTrees(before, snapshot(t, root)); len(diff) > 0 {
				t.Errorf("the tree changed:\n%s", strings.Join(diff, "\n"))
			}
		})
	}
}

// TestApplyDotDot: a path with .. is refused by the validator, and by Apply if it gets one
// anyway; nothing is written.
func TestApplyDotDot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	raw := []byte(`{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/../../../outside","contents":{"source":"data:,x"}}]}}`)
	_, rpt, err := provconfig.ParseJSON(raw)
	if want := "error at $.storage.files.0.path, line 1 col 61: path is not fully simplified"; !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(rpt.String(), want) {
		t.Errorf("ParseJSON = %v, report %q; want ErrInvalid and %q", err, rpt, want)
	}
	root := newRoot(t)
	before := snapshot(t, root)
	var cfg provconfig.Config
	p, src := "/etc/../../../outside", "data:,x"
	cfg.Storage.Files = append(cfg.Storage.Files, types.File{Node: types.Node{Path: p}, FileEmbedded1: types.FileEmbedded1{Contents: types.Resource{Source: &src}}})
	_, err = provision.Apply(context.Background(), root, cfg, provision.Options{})
	if want := `$.storage.files.0.path: path "/etc/../../../outside" has a .. component`; !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Errorf("Apply error = %v, want ErrInvalid containing %q", err, want)
	}
	if diff := diffTrees(before, snapshot(t, root)); len(diff) > 0 {
		t.Errorf("the tree changed:\n%s", strings.Join(diff, "\n"))
	}
}

// TestApplyExistingUserOtherUID: a user that exists with another uid is refused, not
// renumbered, and nothing is written.
func TestApplyExistingUserOtherUID(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	root := newRoot(t)
	before := snapshot(t, root)
	cfg, _, err := provconfig.ParseJSON([]byte(`{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core"},{"name":"messagebus","uid":2000}]},"storage":{"files":[{"path":"/etc/a"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = provision.Apply(context.Background(), root, cfg, provision.Options{})
	want := `$.passwd.users.1.uid: user "messagebus" exists with uid 100, not 2000`
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), want) {
		t.Errorf("Apply error = %v, want ErrConflict containing %q", err, want)
	}
	if diff := diffTrees(before, snapshot(t, root)); len(diff) > 0 {
		t.Errorf("the tree changed:\n%s", strings.Join(diff, "\n"))
	}
}

// TestApplySymlinkOutside: a symlink in the tree that points outside it resolves inside the
// root (as it will once the tree is /), so nothing outside is written or chmodded.
func TestApplySymlinkOutside(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	root := newRoot(t)
	outside := t.TempDir()
	if err := os.Chmod(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "etc/escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../..", filepath.Join(root, "etc/up")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ storage, err string }{
		// The link resolves to <root>/<outside>, which does not exist: found while checking.
		{`{"files":[{"path":"/etc/escape/x","contents":{"source":"data:,x"}}]}`, "$.storage.files.0.path: /etc/escape is a symlink to a directory that does not exist"},
		{`{"directories":[{"path":"/etc/escape","mode":511}]}`, "$.storage.directories.0: /etc/escape exists and is not a directory"},
		{`{"files":[{"path":"/etc/up` + outside + `/y","contents":{"source":"data:,y"}}]}`, ""},
	} {
		cfg, _, err := provconfig.ParseJSON([]byte(`{"ignition":{"version":"3.3.0"},"storage":` + tt.storage + `}`))
		if err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, root)
		_, err = provision.Apply(context.Background(), root, cfg, provision.Options{})
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Apply(%s) = %v, want %q", tt.storage, err, tt.err)
		}
		if tt.err != "" {
			if diff := diffTrees(before, snapshot(t, root)); len(diff) > 0 {
				t.Errorf("the tree changed:\n%s", strings.Join(diff, "\n"))
			}
		}
	}
	entries, _ := os.ReadDir(outside)
	st, _ := os.Stat(outside)
	if len(entries) != 0 || st.Mode().Perm() != 0o700 {
		t.Errorf("outside the root: %d entries, mode %o; want none, 0700", len(entries), st.Mode().Perm())
	}
	// The last file went where the link leads once the tree is the root: inside it.
	if data, err := os.ReadFile(filepath.Join(root, outside, "y")); err != nil || string(data) != "y" {
		t.Errorf("read %s/y inside the root = %q, %v; want y", outside, data, err)
	}
}
