package compose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/strata-os/strata/internal/errdefs"
)

// convertVar replaces the tree's /var by systemd-tmpfiles lines that
// recreate it at boot (an OSTree commit's /var is empty: a deployment
// shares the stateroot's /var), moves the dpkg database to DpkgDatabase
// with a /var/lib/dpkg symlink back to it, and makes /home, /root, /opt,
// /srv, /mnt and /usr/local symlinks into /var. It returns the number of
// lines written to TmpfilesConf.
//
// Directories and symlinks of /var become "d" and "L" lines with their
// mode and owner, empty files "f" lines; files with content (caches, logs,
// state of maintainer scripts) are dropped. Paths another tmpfiles.d file
// of the tree already creates are left to it. With systemd-journald in the
// tree, /var/log/journal is added: the journal persists.
func convertVar(root string) (int, error) {
	names, err := readOwnerNames(root)
	if err != nil {
		return 0, err
	}
	declared, err := declaredTmpfiles(root, filepath.Base(TmpfilesConf))
	if err != nil {
		return 0, err
	}
	var lines []string
	add := func(line, path string) {
		if !declared[path] {
			lines = append(lines, line)
			declared[path] = true
		}
	}
	db := filepath.Join(root, "var/lib/dpkg")
	if _, err := os.Lstat(db); err == nil {
		dst := filepath.Join(root, DpkgDatabase)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return 0, err
		}
		if err := os.Rename(db, dst); err != nil {
			return 0, err
		}
		add("L /var/lib/dpkg - - - - /"+DpkgDatabase, "/var/lib/dpkg")
	}
	varDir := filepath.Join(root, "var")
	err = filepath.WalkDir(varDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == varDir {
			return err
		}
		line, err := tmpfilesLine(p, "/var/"+filepath.ToSlash(mustRel(varDir, p)), names)
		if err != nil || line == "" {
			return err
		}
		add(line, "/var/"+filepath.ToSlash(mustRel(varDir, p)))
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, l := range varLinks {
		p := filepath.Join(root, l.path)
		st, err := os.Lstat(p)
		mode, owner := l.mode, "root root"
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, err
		case st.IsDir():
			mode, owner = st.Mode(), ownerOf(st, names)
			err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
				if err != nil || q == p {
					return err
				}
				dest := "/var/" + l.varDir + "/" + filepath.ToSlash(mustRel(p, q))
				if !d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
					if l.path == "root" {
						return nil // root's dot files: /var/roothome starts empty
					}
					return fmt.Errorf("/%s/%s: only directories and symlinks may be in /%s of an OSTree system (it becomes a symlink to /var/%s): %w",
						l.path, mustRel(p, q), l.path, l.varDir, errdefs.ErrInvalid)
				}
				line, err := tmpfilesLine(q, dest, names)
				if err == nil {
					add(line, dest)
				}
				return err
			})
			if err != nil {
				return 0, err
			}
			if err := os.RemoveAll(p); err != nil {
				return 0, err
			}
		default:
			if err := os.Remove(p); err != nil {
				return 0, err
			}
		}
		add(fmt.Sprintf("d /var/%s %04o %s -", l.varDir, perm(mode), owner), "/var/"+l.varDir)
		if err := os.Symlink(l.target, p); err != nil {
			return 0, err
		}
	}
	if journaldInstalled(root) {
		// A persistent journal, as on Fedora CoreOS: the log of a boot that
		// failed its health checks is still there after the fallback
		// (journalctl -b -1). journald keeps logs in /var only when this
		// directory exists (Storage=auto); systemd's own tmpfiles.d lines
		// merely adjust it ("z").
		add("d /var/log/journal 2755 root systemd-journal -", "/var/log/journal")
	}
	if err := emptyDir(varDir); err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	buf.WriteString("# Written by strata compose: the directories the packages installed in /var,\n" +
		"# recreated at boot because an OSTree commit carries an empty /var (docs/compose.md).\n")
	for _, l := range lines {
		buf.WriteString(l + "\n")
	}
	p := filepath.Join(root, TmpfilesConf)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return 0, err
	}
	return len(lines), os.WriteFile(p, buf.Bytes(), 0o644)
}

// tmpfilesLine describes the file at p as a tmpfiles.d line for path, or
// "" when it is not recreated (a file with content).
func tmpfilesLine(p, path string, names ownerNames) (string, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(path, " \t\n\\") {
		return "", fmt.Errorf("%s: space or backslash in a /var path: %w", path, errdefs.ErrInvalid)
	}
	switch {
	case st.IsDir():
		return fmt.Sprintf("d %s %04o %s -", path, perm(st.Mode()), ownerOf(st, names)), nil
	case st.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("L %s - - - - %s", path, t), nil
	case st.Mode().IsRegular() && st.Size() == 0:
		return fmt.Sprintf("f %s %04o %s -", path, perm(st.Mode()), ownerOf(st, names)), nil
	}
	return "", nil
}

// perm is the permission bits with setuid, setgid and sticky, in octal
// tmpfiles.d form.
func perm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

type ownerNames struct{ users, groups map[uint32]string }

func ownerOf(st fs.FileInfo, n ownerNames) string {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "root root"
	}
	u, g := n.users[s.Uid], n.groups[s.Gid]
	if u == "" {
		u = strconv.FormatUint(uint64(s.Uid), 10)
	}
	if g == "" {
		g = strconv.FormatUint(uint64(s.Gid), 10)
	}
	return u + " " + g
}

// readOwnerNames maps the uids and gids of the tree's passwd and group
// files to names, which tmpfiles.d resolves at boot.
func readOwnerNames(root string) (ownerNames, error) {
	n := ownerNames{users: map[uint32]string{}, groups: map[uint32]string{}}
	for _, f := range []struct {
		file string
		m    map[uint32]string
	}{{"etc/passwd", n.users}, {"etc/group", n.groups}} {
		data, err := os.ReadFile(filepath.Join(root, f.file))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		for _, l := range strings.Split(string(data), "\n") {
			fl := strings.Split(l, ":")
			if len(fl) < 3 {
				continue
			}
			if id, err := strconv.ParseUint(fl[2], 10, 32); err == nil {
				if _, dup := f.m[uint32(id)]; !dup {
					f.m[uint32(id)] = fl[0]
				}
			}
		}
	}
	return n, nil
}

// declaredTmpfiles returns the paths the tree's tmpfiles.d files declare,
// but for the file named skip.
func declaredTmpfiles(root, skip string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, dir := range []string{"usr/lib/tmpfiles.d", "etc/tmpfiles.d"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.conf"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if filepath.Base(f) == skip {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // dangling symlink (masked)
					continue
				}
				return nil, err
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				w := strings.Fields(sc.Text())
				if len(w) >= 2 && createsPath(w[0]) {
					out[w[1]] = true
				}
			}
		}
	}
	return out, nil
}

// createsPath says whether a tmpfiles.d line of this type creates its path
// (tmpfiles.d(5)): f F d D v q Q p L c b C, with or without the modifiers
// + ! - = ~ ^ $ ?. The others (w, e, x, X, r, R, z, Z, t, T, h, H, a, A)
// only act on what exists, so they do not make a /var path declared.
func createsPath(typ string) bool {
	t := strings.TrimRight(typ, "+!-=~^$?")
	return len(t) == 1 && strings.ContainsAny(t, "fFdDvqQpLcbC")
}

// journaldInstalled says whether the tree has systemd-journald.
func journaldInstalled(root string) bool {
	for _, p := range []string{"usr/lib/systemd/systemd-journald", "lib/systemd/systemd-journald"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			return true
		}
	}
	return false
}

func mustRel(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	return r
}
