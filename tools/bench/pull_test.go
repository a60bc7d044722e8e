package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeTestTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPullUpdate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "dpkg package",
			files: map[string]string{
				"var/lib/dpkg/info/openssh-client.list": "/.\n/usr\n/usr/bin\n/usr/bin/ssh\n/usr/bin/scp\n/usr/bin/gone\n",
				"var/lib/dpkg/status":                   "Package: openssh-client\n",
				"usr/bin/ssh":                           "ssh v1",
				"usr/bin/scp":                           "scp v1",
				"usr/bin/other":                         "untouched",
			},
			want: []string{"usr/bin/ssh", "usr/bin/scp", "var/lib/dpkg/status"},
		},
		{
			name:  "no dpkg: the first directory with files",
			files: map[string]string{"a/b/f1": "1", "a/b/f2": "2", "z/f3": "3"},
			want:  []string{"a/b/f1", "a/b/f2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := writeTestTree(t, tt.files)
			// A hardlink outside the tree must keep the old content: files are replaced.
			outside := filepath.Join(t.TempDir(), "link")
			if err := os.Link(filepath.Join(tree, tt.want[0]), outside); err != nil {
				t.Fatal(err)
			}
			got, err := pullUpdate(tree, "openssh-client")
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("pullUpdate() = %v, %v; want %v", got, err, tt.want)
			}
			for p, data := range tt.files {
				b, err := os.ReadFile(filepath.Join(tree, p))
				if err != nil {
					t.Fatal(err)
				}
				changed := slices.Contains(tt.want, p)
				if changed != (string(b) != data) || changed && !strings.HasPrefix(string(b), data) {
					t.Errorf("after pullUpdate, %s = %q (changed %v)", p, b, changed)
				}
			}
			if b, _ := os.ReadFile(outside); string(b) != tt.files[tt.want[0]] {
				t.Errorf("pullUpdate wrote through a hardlink: %q", b)
			}
		})
	}
}

func TestPullArgv(t *testing.T) {
	t.Parallel()
	s, o := strataCLI{bin: "strata"}, ostreeCLI{bin: "ostree"}
	if got, want := pullArgv(s, "C", "http://h/"), []string{"strata", "repo", "pull", "--repo", "C", "--url", "http://h/", "--no-verify", "bench"}; !slices.Equal(got, want) {
		t.Errorf("pullArgv(strata) = %q, want %q", got, want)
	}
	if got, want := pullArgv(o, "C", "http://h/"), []string{"ostree", "--repo=C", "pull", "--url=http://h/", "origin", "bench"}; !slices.Equal(got, want) {
		t.Errorf("pullArgv(ostree) = %q, want %q", got, want)
	}
}

func TestPulledCommit(t *testing.T) {
	t.Parallel()
	for _, ref := range []string{"refs/heads/bench", "refs/remotes/origin/bench"} {
		client := t.TempDir()
		if err := os.MkdirAll(filepath.Join(client, filepath.Dir(ref)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(client, ref), []byte(sumA+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := pulledCommit(client); err != nil || got != sumA {
			t.Errorf("pulledCommit() with %s = %q, %v; want %s", ref, got, err, sumA)
		}
	}
	if _, err := pulledCommit(t.TempDir()); err == nil {
		t.Error("pulledCommit() of a repository without the ref succeeded")
	}
}

func TestRenderTableTransferred(t *testing.T) {
	t.Parallel()
	cells := []cell{
		{Op: "pull", Tool: "strata", Median: sample{Wall: time.Second, Bytes: 3 << 20}, Result: sumA},
		{Op: "pull", Tool: "ostree", Median: sample{Wall: time.Second, Bytes: 2048}, Result: sumA},
	}
	var b bytes.Buffer
	renderTable(&b, cells)
	for _, want := range []string{"| transferred |", "|     3.0 MiB |", "|     2.0 KiB |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("renderTable() lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	renderTable(&b, []cell{{Op: "commit", Tool: "strata", Median: sample{Wall: time.Second}}})
	if strings.Contains(b.String(), "transferred") {
		t.Errorf("renderTable() without network ops has a transferred column:\n%s", b.String())
	}
}
