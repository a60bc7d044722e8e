package bootloader

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeESP writes entries (file name → linux path; "" for a missing
// kernel) and loader.conf.
func writeESP(t *testing.T, conf string, entries map[string]string) string {
	t.Helper()
	esp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(esp, entriesDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(esp, "vmlinuz"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if conf != "" {
		if err := os.WriteFile(filepath.Join(esp, "loader/loader.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range entries {
		if err := os.WriteFile(filepath.Join(esp, entriesDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return esp
}

func TestFirmwareChoice(t *testing.T) {
	t.Parallel()
	const (
		k    = "linux /vmlinuz\n"
		id1  = "1111111111111111"
		id2  = "2222222222222222"
		conf = "timeout 0\ndefault strata-*\n"
	)
	tests := []struct {
		name    string
		conf    string
		entries map[string]string
		want    string
	}{
		{"largest ORD first", conf, map[string]string{"strata-9-os-" + id1 + ".conf": k, "strata-10-os-" + id2 + "+3.conf": k}, "strata-10-os-" + id2 + "+3.conf"},
		{"bad entry sorted last", conf, map[string]string{"strata-9-os-" + id1 + ".conf": k, "strata-10-os-" + id2 + "+0-3.conf": k}, "strata-9-os-" + id1 + ".conf"},
		{"tries left still boots", conf, map[string]string{"strata-9-os-" + id1 + ".conf": k, "strata-10-os-" + id2 + "+1-2.conf": k}, "strata-10-os-" + id2 + "+1-2.conf"},
		{"all bad: the first bad", conf, map[string]string{"strata-9-os-" + id1 + "+0-3.conf": k, "strata-10-os-" + id2 + "+0-3.conf": k}, "strata-10-os-" + id2 + "+0-3.conf"},
		{"missing kernel skipped", conf, map[string]string{"strata-9-os-" + id1 + ".conf": k, "strata-10-os-" + id2 + ".conf": "linux /gone\n"}, "strata-9-os-" + id1 + ".conf"},
		{"default pattern beats a foreign entry", conf, map[string]string{"strata-9-os-" + id1 + ".conf": k, "zzz.conf": k}, "strata-9-os-" + id1 + ".conf"},
		{"no pattern: first in order", "", map[string]string{"strata-9-os-" + id1 + ".conf": k, "zzz.conf": k}, "zzz.conf"},
		{"sort-key before none", "", map[string]string{"strata-9-os-" + id1 + ".conf": k, "a.conf": "sort-key x\n" + k}, "a.conf"},
		// systemd-boot keeps a repeated key's last value and splits at a tab too.
		{"last linux wins", conf, map[string]string{"strata-9-os-" + id1 + ".conf": k, "strata-10-os-" + id2 + ".conf": "linux /vmlinuz\nlinux\t/gone\n"}, "strata-9-os-" + id1 + ".conf"},
		{"tab-separated linux", conf, map[string]string{"strata-9-os-" + id1 + ".conf": k, "strata-10-os-" + id2 + ".conf": "linux /gone\nlinux\t/vmlinuz\n"}, "strata-10-os-" + id2 + ".conf"},
		{"temporary files ignored", conf, map[string]string{"strata-9-os-" + id1 + ".conf": k, ".strata-10-os-" + id2 + ".conf.tmp": k}, "strata-9-os-" + id1 + ".conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			esp := writeESP(t, tt.conf, tt.entries)
			got, err := FirmwareChoice(esp)
			if err != nil || got != tt.want {
				t.Errorf("FirmwareChoice = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestBlessAndMarkBad(t *testing.T) {
	t.Parallel()
	const id = "1111111111111111"
	tests := []struct {
		name     string
		file     string
		arg      string // name given
		bad      bool
		wantFile string
	}{
		{"bless counted", "strata-9-os-" + id + "+2-1.conf", "strata-9-os-" + id + "+3.conf", false, "strata-9-os-" + id + ".conf"},
		{"bless by base name", "strata-9-os-" + id + "+1-2.conf", "strata-9-os-" + id, false, "strata-9-os-" + id + ".conf"},
		{"bless good is a no-op", "strata-9-os-" + id + ".conf", "strata-9-os-" + id + ".conf", false, "strata-9-os-" + id + ".conf"},
		{"mark bad keeps done", "strata-9-os-" + id + "+2-1.conf", "strata-9-os-" + id + ".conf", true, "strata-9-os-" + id + "+0-1.conf"},
		{"mark bad uncounted", "strata-9-os-" + id + ".conf", "strata-9-os-" + id + ".conf", true, "strata-9-os-" + id + "+0.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			esp := writeESP(t, "", map[string]string{tt.file: "linux /vmlinuz\n"})
			op, opName := Bless, "Bless"
			if tt.bad {
				op, opName = MarkBad, "MarkBad"
			}
			got, err := op(esp, tt.arg)
			if err != nil || got != tt.wantFile {
				t.Errorf("%s(%q) = %q, %v, want %q", opName, tt.arg, got, err, tt.wantFile)
			}
			des, _ := os.ReadDir(filepath.Join(esp, entriesDir))
			if len(des) != 1 || des[0].Name() != tt.wantFile {
				t.Errorf("after %s, entries = %v, want [%s]", opName, des, tt.wantFile)
			}
		})
	}
	esp := writeESP(t, "", nil)
	if _, err := Bless(esp, "strata-1-os-"+id+".conf"); err == nil {
		t.Errorf("Bless(missing) = nil, want an error")
	}
}

func TestRunChecks(t *testing.T) {
	t.Parallel()
	etc, lib := t.TempDir(), t.TempDir()
	script := func(dir, name, body string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	script(lib, "10-ok", "echo fine", 0o755)
	script(lib, "20-shadowed", "exit 1", 0o755)
	script(etc, "20-shadowed", "exit 0", 0o755)
	script(lib, "30-not-executable", "exit 1", 0o644)
	tests := []struct {
		name    string
		extra   func(dir string)
		timeout time.Duration
		want    []string // name:error prefix
		wantErr string
	}{
		{"all pass", nil, 0, []string{"10-ok:", "20-shadowed:"}, ""},
		{"one fails", func(d string) { script(d, "05-fails", "echo broken >&2; exit 3", 0o755) }, 0,
			[]string{"05-fails:exit status 3", "10-ok:", "20-shadowed:"}, "05-fails"},
		{"timeout", func(d string) { script(d, "40-hangs", "exec sleep 30", 0o755) }, 200 * time.Millisecond,
			[]string{"10-ok:", "20-shadowed:", "40-hangs:timed out"}, "40-hangs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			extra := t.TempDir()
			if tt.extra != nil {
				tt.extra(extra)
			}
			res, err := RunChecks(context.Background(), []string{extra, etc, lib, filepath.Join(extra, "missing")}, tt.timeout)
			var got []string
			for _, r := range res {
				e := r.Err
				if i := strings.Index(e, " after"); i >= 0 {
					e = e[:i]
				}
				got = append(got, r.Name+":"+e)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("RunChecks results (-want +got):\n%s", diff)
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("RunChecks error = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}
