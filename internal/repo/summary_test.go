package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

// summaryCommit stores a commit of an empty tree with the given version
// and timestamp and returns its checksum and bytes.
func summaryCommit(t *testing.T, r *Repo, version string, ts uint64) (ostree.Checksum, []byte) {
	t.Helper()
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	meta, err := txn.WriteMetadata(ostree.ObjectDirMeta, ostree.DirMeta{Mode: ostree.ModeDir | 0o755}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := txn.WriteMetadata(ostree.ObjectDirTree, ostree.DirTree{}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	cm := &ostree.Commit{Subject: "s", Timestamp: ts, RootTree: tree, RootMeta: meta}
	if version != "" {
		cm.Metadata.Set(ostree.MetaVersion, gvariant.NewVariant("s", version))
	}
	data, err := cm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := txn.WriteMetadata(ostree.ObjectCommit, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	return c, data
}

func TestRegenerateSummary(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name    string
		mode    Mode
		sign    bool
		wantSig bool
	}{
		{name: "archive unsigned", mode: ModeArchive},
		{name: "archive signed", mode: ModeArchive, sign: true, wantSig: true},
		{name: "bare-user unsigned", mode: ModeBareUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Init(t.TempDir(), tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.SetFsync(false)
			c1, data1 := summaryCommit(t, r, "1.0", 1672531200)
			c2, data2 := summaryCommit(t, r, "", 1672617600)
			for _, ref := range []struct {
				remote, name string
				c            ostree.Checksum
			}{{"", "os/stable", c1}, {"", "app", c2}, {"origin", "os/remote-only", c2}} {
				if err := r.SetRef(ref.remote, ref.name, ref.c); err != nil {
					t.Fatal(err)
				}
			}
			// A stale signature must not survive a regeneration.
			stale := filepath.Join(r.Path(), SummarySigFile)
			if err := os.WriteFile(stale, []byte("stale"), 0o644); err != nil {
				t.Fatal(err)
			}
			opts := SummaryOptions{Now: func() time.Time { return now }}
			if tt.sign {
				opts.Sign = func(b []byte) ([]byte, error) { return append([]byte("sig:"), b[:4]...), nil }
			}
			data, err := r.RegenerateSummary(opts)
			if err != nil {
				t.Fatalf("RegenerateSummary() error = %v", err)
			}
			onDisk, sig, err := r.ReadSummary()
			if err != nil {
				t.Fatalf("ReadSummary() error = %v", err)
			}
			if !bytes.Equal(onDisk, data) {
				t.Errorf("ReadSummary() = %d bytes, want the %d bytes RegenerateSummary returned", len(onDisk), len(data))
			}
			if tt.wantSig != (sig != nil) {
				t.Errorf("ReadSummary() summary.sig = %q, want present %v", sig, tt.wantSig)
			}
			if tt.wantSig && !bytes.Equal(sig, append([]byte("sig:"), data[:4]...)) {
				t.Errorf("summary.sig = %q, want the signature of the new summary", sig)
			}
			s, err := ostree.ParseSummary(data)
			if err != nil {
				t.Fatalf("ParseSummary(regenerated) error = %v", err)
			}
			want := []ostree.SummaryRef{
				ostree.NewSummaryRef("app", data2, mustParseCommit(t, data2)),
				ostree.NewSummaryRef("os/stable", data1, mustParseCommit(t, data1)),
			}
			if len(s.Refs) != len(want) {
				t.Fatalf("summary refs = %d, want %d (local refs only)", len(s.Refs), len(want))
			}
			for i, w := range want {
				got := s.Refs[i]
				if got.Name != w.Name || got.Checksum != w.Checksum || got.CommitSize != w.CommitSize || got.Timestamp() != w.Timestamp() {
					t.Errorf("summary ref %d = %s %s size %d ts %d, want %s %s size %d ts %d", i,
						got.Name, got.Checksum, got.CommitSize, got.Timestamp(), w.Name, w.Checksum, w.CommitSize, w.Timestamp())
				}
			}
			if v, _ := s.Refs[1].Metadata.Get(ostree.SummaryCommitVersion); v.Value != "1.0" {
				t.Errorf("summary ref os/stable version = %v, want 1.0", v.Value)
			}
			wantMeta := []string{ostree.SummaryMode, ostree.SummaryLastModified, ostree.SummaryTombstones, ostree.SummaryIndexedDeltas}
			for i, k := range wantMeta {
				if i >= len(s.Metadata) || s.Metadata[i].Key != k {
					t.Errorf("summary metadata key %d = %v, want %s", i, s.Metadata, k)
				}
			}
			if got, want := s.Metadata.String(ostree.SummaryMode), tt.mode.configName(); got != want {
				t.Errorf("summary %s = %q, want %q", ostree.SummaryMode, got, want)
			}
			lm := ostree.SummaryRef{Metadata: ostree.Metadata{{Key: ostree.SummaryCommitTimestamp,
				Value: mustGet(t, s.Metadata, ostree.SummaryLastModified)}}}
			if got := lm.Timestamp(); got != uint64(now.Unix()) {
				t.Errorf("summary last-modified = %d, want %d", got, now.Unix())
			}
		})
	}
}

func TestReadSummaryMissing(t *testing.T) {
	t.Parallel()
	r, err := Init(t.TempDir(), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, _, err := r.ReadSummary(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReadSummary(no summary) error = %v, want ErrNotFound", err)
	}
}

func mustParseCommit(t *testing.T, b []byte) *ostree.Commit {
	t.Helper()
	c, err := ostree.ParseCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustGet(t *testing.T, m ostree.Metadata, key string) gvariant.Variant {
	t.Helper()
	v, ok := m.Get(key)
	if !ok {
		t.Fatalf("metadata has no %s", key)
	}
	return v
}
