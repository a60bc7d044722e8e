package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

// cmtRun runs strata with stdin and returns stdout, stderr and the exit
// code.
func cmtRun(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, bytes.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// cmtSetup makes an archive repository and a tar stream of one file.
func cmtSetup(t *testing.T) (repoPath string, tarData []byte) {
	t.Helper()
	repoPath = filepath.Join(t.TempDir(), "repo")
	if _, _, code := cmtRun(t, nil, "repo", "init", "--repo", repoPath, "--mode", "archive"); code != 0 {
		t.Fatal("repo init failed")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "./hello.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 12})
	tw.Write([]byte("hello world\n"))
	tw.Close()
	return repoPath, buf.Bytes()
}

func TestRepoCommitUsage(t *testing.T) {
	t.Parallel()
	repoPath, _ := cmtSetup(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no source", []string{"--branch", "b"}, "missing the tree to commit"},
		{"two sources", []string{"--branch", "b", "--tree", dir, "--tar", "-"}, "give the tree once"},
		{"no branch", []string{"--tree", dir}, `"branch" not set`},
		{"bad branch", []string{"--branch", "bad!ref", "--tree", dir}, `--branch: ref "bad!ref": invalid name`},
		{"bad metadata", []string{"--branch", "b", "--tree", dir, "--metadata", "novalue"}, "want KEY=VALUE"},
		{"bad timestamp", []string{"--branch", "b", "--tree", dir, "--timestamp", "yesterday"}, "seconds since the epoch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"repo", "commit", "--repo", repoPath}, tc.args...)
			out, errOut, code := cmtRun(t, nil, args...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("strata %s = exit %d, stdout %q, stderr %q; want exit 2, no stdout, stderr containing %q", strings.Join(args, " "), code, out, errOut, tc.want)
			}
		})
	}
}

func TestRepoCommitOutput(t *testing.T) {
	t.Parallel()
	repoPath, tarData := cmtSetup(t)
	base := []string{"repo", "commit", "--repo", repoPath, "--branch", "b", "--tar", "-", "--timestamp", "1672531200", "--subject", "s"}
	out, errOut, code := cmtRun(t, tarData, base...)
	first := strings.TrimSpace(out)
	if code != 0 || !ostree.IsChecksum(first) || out != first+"\n" {
		t.Fatalf("strata repo commit = exit %d, stdout %q, stderr %q; want exit 0 and only the checksum", code, out, errOut)
	}
	out, errOut, code = cmtRun(t, tarData, append(base, "--json", "--metadata", "version=2", "--metadata", "a=b=c")...)
	var got commitResultJSON
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("strata repo commit --json = exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got.Parent != first || got.Ref != "b" || got.Files != 1 || got.ContentReused != 1 || got.ContentWritten != 0 || got.Dirs != 1 {
		t.Errorf("strata repo commit --json = %+v, want parent %s, ref b, 1 file reused, 1 dir", got, first)
	}
	r, err := repo.Open(repoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, _ := ostree.ParseChecksum(got.Commit)
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range cm.Metadata {
		keys = append(keys, e.Key.(string))
	}
	if strings.Join(keys, " ") != "version a ostree.ref-binding" || cm.Metadata.String("a") != "b=c" {
		t.Errorf("commit metadata = %v, want version, a=%q, ostree.ref-binding in that order", cm.Metadata, "b=c")
	}
	if _, errOut, code := cmtRun(t, nil, "repo", "commit", "--repo", repoPath, "--branch", "b", "--tree", filepath.Join(t.TempDir(), "missing")); code != exitFailure || !strings.Contains(errOut, "cannot commit") {
		t.Errorf("strata repo commit of a missing tree = exit %d, stderr %q, want exit 1 and \"cannot commit\"", code, errOut)
	}
}

func TestRepoCommitSignKey(t *testing.T) {
	t.Parallel()
	repoPath, tarData := cmtSetup(t)
	key, err := sign.NewSecretKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(t.TempDir(), "k")
	if err := sign.WriteKeyPair(prefix, key); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cmtRun(t, tarData, "repo", "commit", "--repo", repoPath, "--branch", "b", "--tar", "-", "--sign-key", prefix+".key")
	if code != 0 {
		t.Fatalf("strata repo commit --sign-key = exit %d, stderr %q", code, errOut)
	}
	r, err := repo.Open(repoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, _ := ostree.ParseChecksum(strings.TrimSpace(out))
	data, _ := r.ReadMetadata(ostree.ObjectCommit, c)
	detached, err := r.ReadCommitMeta(c)
	if err != nil || detached == nil {
		t.Fatalf("ReadCommitMeta(%s) = %x, %v, want a signature", c, detached, err)
	}
	if _, err := sign.Verify(data, detached, sign.NewEd25519Verifier([]sign.PublicKey{key.Public()}, nil)); err != nil {
		t.Errorf("sign.Verify(commit %s) = %v, want a valid signature", c, err)
	}

}
