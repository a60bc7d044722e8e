package oci

import (
	"bufio"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// dpkgInfo is where compose keeps the package database's file lists (/var/lib/dpkg/info).
const dpkgInfo = "usr/lib/sysimage/dpkg/info"

// DefaultMaxLayers is bootc's and rpm-ostree's default bound on chunked layers.
const DefaultMaxLayers = 64

// chunk is one layer's share of the files: the packages it holds and their file paths.
type chunk struct {
	components []string
	size       int64
	files      map[string]bool
}

// readPackageFiles maps each path of the commit to the package that owns it, from dpkg's
// *.list files. Paths are as in the commit: /etc becomes usr/etc, and the merged-/usr
// directories (bin, sbin, lib*) resolve into usr.
func readPackageFiles(ctx context.Context, r *repo.Repo, commit ostree.Checksum) (map[string]string, error) {
	owner := map[string]string{}
	info, err := repo.Lookup(r, commit, "/"+dpkgInfo)
	if err != nil || info == nil || info.Kind != repo.EntryDir {
		return owner, nil // not a Debian tree: one layer of unpackaged files
	}
	dt, err := info.DirTree()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dpkgInfo, err)
	}
	for _, f := range dt.Files {
		pkg, ok := strings.CutSuffix(f.Name, ".list")
		if !ok {
			continue
		}
		pkg, _, _ = strings.Cut(pkg, ":") // libc6:amd64
		c, err := r.OpenContent(f.Checksum)
		if err != nil {
			return nil, fmt.Errorf("reading %s/%s: %w", dpkgInfo, f.Name, err)
		}
		sc := bufio.NewScanner(c)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p := commitPath(sc.Text())
			if p != "" && owner[p] == "" {
				owner[p] = pkg
			}
		}
		err = sc.Err()
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s/%s: %w", dpkgInfo, f.Name, err)
		}
	}
	return owner, ctx.Err()
}

// commitPath maps a path of a dpkg file list to the commit's layout.
func commitPath(p string) string {
	p = strings.TrimPrefix(strings.TrimSpace(p), "/")
	first, _, _ := strings.Cut(p, "/")
	switch first {
	case "etc":
		return "usr/" + p
	case "bin", "sbin", "lib", "lib32", "lib64", "libx32":
		return "usr/" + p
	}
	return p
}

// planChunks splits the files (path → size) into at most max-2 package layers: the
// biggest packages alone, the rest grouped by name into a few layers of similar size.
// Files no package owns are left to the layer of unpackaged files.
func planChunks(files map[string]int64, owner map[string]string, max int) []*chunk {
	byPkg := map[string]*chunk{}
	for p, size := range files {
		pkg := owner[p]
		if pkg == "" {
			continue
		}
		c := byPkg[pkg]
		if c == nil {
			c = &chunk{components: []string{pkg}, files: map[string]bool{}}
			byPkg[pkg] = c
		}
		c.size += size
		c.files[p] = true
	}
	pkgs := make([]*chunk, 0, len(byPkg))
	for _, c := range byPkg {
		pkgs = append(pkgs, c)
	}
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].size != pkgs[j].size {
			return pkgs[i].size > pkgs[j].size
		}
		return pkgs[i].components[0] < pkgs[j].components[0]
	})
	avail := max - 2 // the unpackaged files and the commit have a layer each
	if avail < 1 {
		avail = 1
	}
	if len(pkgs) <= avail {
		return pkgs
	}
	groups := avail / 4
	if groups < 1 {
		groups = 1
	}
	singles, rest := pkgs[:avail-groups], pkgs[avail-groups:]
	sort.Slice(rest, func(i, j int) bool { return rest[i].components[0] < rest[j].components[0] })
	var total int64
	for _, c := range rest {
		total += c.size
	}
	out := append([]*chunk(nil), singles...)
	per := total/int64(groups) + 1
	var cur *chunk
	for _, c := range rest {
		if cur == nil || (cur.size >= per && len(out) < avail) {
			cur = &chunk{files: map[string]bool{}}
			out = append(out, cur)
		}
		cur.components = append(cur.components, c.components...)
		cur.size += c.size
		for p := range c.files {
			cur.files[p] = true
		}
	}
	return out
}
