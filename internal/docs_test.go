package internal_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// The repository explains itself: every repository path that a Go comment or a Markdown document
// names exists, and nothing cites a document that is not in the repository
// (docs/conventions.md, "Comments and docs").

// rootDirs are the top-level directories whose paths comments and documents name.
var rootDirs = []string{"cmd", "docs", "examples", "internal", "scripts", "testdata", "tools", ".ci"}

// plannedPaths are packages that docs/design.md describes as planned. They are allowed to be
// named before they exist; nothing else is.
var plannedPaths = []string{"internal/boot", "internal/distro"}

var (
	// repoPath matches a path under one of rootDirs, at the start of a word: not after ':' or
	// '/', so upstream citations such as coreos/ignition:internal/distro/distro.go and
	// absolute paths such as /usr/lib/systemd are left alone.
	repoPath = regexp.MustCompile("(?:^|[\\s`'\"(\\[<,;=])((?:" + strings.Join(quoteAll(rootDirs), "|") + ")/[A-Za-z0-9_.+@*/-]*)")
	// goFile matches a Go file name, alone or with directories (sysroot/write.go), at the start
	// of a word.
	goFile = regexp.MustCompile("(?:^|[\\s`'\"(\\[<,;])((?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9][A-Za-z0-9_]*\\.go)\\b")
	// placeholder matches a path segment that stands for a value (KVER, NAME, vVERSION.yaml)
	// or a pattern (crash_*_test.go): only the path before it is checked.
	placeholder = regexp.MustCompile(`[A-Z]{3,}|\*`)
	// mdLink matches the target of a relative Markdown link.
	mdLink = regexp.MustCompile(`\]\(([^)#\s]+)(?:#[^)]*)?\)`)
	// outside matches citations of what a clone does not have: the directory of design notes
	// beside the repository, and the design notes, style guide and specification pages kept
	// there before the repository carried its own docs/. The strings are split so that this
	// file does not match itself (and names none of them whole).
	outside = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.-])(?:spe[c]/|\.\./shar[e]d|DESIG[N]\.md|STYL[E]\.md|spe[c] [§])`)
)

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = regexp.QuoteMeta(v)
	}
	return out
}

// docText is the text of one file that may name paths: the comments of a Go file, or a whole
// Markdown file, with the line each piece starts on.
type docText struct {
	file  string // path relative to the repository root
	line  int
	text  string
	isDoc bool // a Markdown document (links are relative to its directory)
}

// collectTexts returns the comments of every Go file and the text of README.md and every
// Markdown file under docs/.
func collectTexts(t *testing.T, root string) []docText {
	t.Helper()
	var out []docText
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if name := d.Name(); rel != "." && (strings.HasPrefix(name, ".") && name != ".ci" || name == "bin" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(p, ".go"):
			f, err := parser.ParseFile(fset, p, nil, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return fmt.Errorf("parsing %s: %w", rel, err)
			}
			for _, g := range f.Comments {
				for _, c := range g.List {
					out = append(out, docText{file: rel, line: fset.Position(c.Pos()).Line, text: commentText(c)})
				}
			}
		case strings.HasSuffix(p, ".md") && (rel == "README.md" || strings.HasPrefix(rel, "docs"+string(filepath.Separator))):
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i, l := range strings.Split(string(b), "\n") {
				out = append(out, docText{file: rel, line: i + 1, text: l, isDoc: true})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

func commentText(c *ast.Comment) string {
	if s, ok := strings.CutPrefix(c.Text, "//"); ok {
		return s
	}
	return strings.TrimSuffix(strings.TrimPrefix(c.Text, "/*"), "*/")
}

// exists reports whether rel (slash-separated) names a file or directory relative to one of
// the bases.
func exists(rel string, bases ...string) bool {
	for _, b := range bases {
		if _, err := os.Stat(filepath.Join(b, filepath.FromSlash(rel))); err == nil {
			return true
		}
	}
	return false
}

// danglingPaths returns the repository paths that d names and that do not exist, given the
// repository root and the base names of every Go file in it.
func danglingPaths(d docText, root string, goFiles map[string]bool) []string {
	var bad []string
	dir := filepath.Join(root, filepath.Dir(d.file))
	for _, line := range strings.Split(d.text, "\n") {
		for _, m := range repoPath.FindAllStringSubmatch(line, -1) {
			p := checkedPrefix(trimPath(m[1]))
			if p == "" || slices.ContainsFunc(plannedPaths, func(pl string) bool { return p == pl || strings.HasPrefix(p, pl+"/") }) {
				continue
			}
			if !exists(p, root, dir) && !isIdentifier(p, root) {
				bad = append(bad, p)
			}
		}
		for _, m := range goFile.FindAllStringSubmatch(line, -1) {
			p := m[1]
			if strings.Contains(p, "/") {
				// With directories: relative to the repository, to internal/, or to the
				// file's directory or one of its parents (sysroot/write.go from internal/cli).
				if exists(p, root, filepath.Join(root, "internal"), dir, filepath.Dir(dir)) {
					continue
				}
				bad = append(bad, p)
				continue
			}
			// A bare file name: in the same package, or (in documents and in comments that
			// talk about another package) anywhere in the repository.
			if !exists(p, dir) && !goFiles[p] {
				bad = append(bad, p)
			}
		}
		if d.isDoc {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				if !exists(target, dir) {
					bad = append(bad, target)
				}
			}
		}
	}
	return bad
}

// checkedPrefix returns the part of p that must exist: p without a trailing "/..." (a Go
// package pattern) and without the segments from the first placeholder on.
func checkedPrefix(p string) string {
	p = strings.TrimSuffix(p, "/...")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if placeholder.MatchString(s) {
			return strings.Join(segs[:i], "/")
		}
	}
	return p
}

// isIdentifier reports whether p is a package path followed by one of its identifiers
// (internal/pull/pulltest.Proxy).
func isIdentifier(p, root string) bool {
	dir, last := path.Split(p)
	pkg, _, ok := strings.Cut(last, ".")
	return ok && pkg != "" && exists(dir+pkg, root)
}

// trimPath drops what ends a path in prose: punctuation, a closing quote or bracket.
func trimPath(p string) string {
	return strings.TrimRight(p, ".,;:)`'\"")
}

// TestDocPaths checks that every repository path named in a Go comment, in README.md or in a
// document under docs/ exists, and that nothing cites a document outside the repository.
func TestDocPaths(t *testing.T) {
	t.Parallel()
	root := testutil.RepoRoot(t)
	texts := collectTexts(t, root)
	goFiles := map[string]bool{}
	for _, d := range texts {
		if strings.HasSuffix(d.file, ".go") {
			goFiles[filepath.Base(d.file)] = true
		}
	}
	checked := 0
	for _, d := range texts {
		checked++
		for _, p := range danglingPaths(d, root, goFiles) {
			t.Errorf("%s:%d names %s, which is not in the repository", d.file, d.line, p)
		}
		if loc := outside.FindStringIndex(d.text); loc != nil {
			t.Errorf("%s:%d cites a document outside the repository (%q): point at the docs/ page that carries the fact, or state it", d.file, d.line, strings.TrimSpace(d.text[loc[0]:]))
		}
	}
	if !slices.ContainsFunc(texts, func(d docText) bool { return d.file == "README.md" }) || !slices.ContainsFunc(texts, func(d docText) bool { return d.file == filepath.Join("docs", "design.md") }) {
		t.Fatalf("README.md or docs/design.md was not scanned (%d texts)", checked)
	}
}

// TestDocPathRules pins the rules on made-up comments and documents.
func TestDocPathRules(t *testing.T) {
	t.Parallel()
	root := testutil.RepoRoot(t)
	goFiles := map[string]bool{"write.go": true}
	for _, tt := range []struct {
		name      string
		d         docText
		wantBad   []string
		wantCited bool
	}{
		{"existing package", docText{file: "internal/repo/doc.go", text: " see internal/sysroot and docs/boot.md"}, nil, false},
		{"missing package", docText{file: "internal/repo/doc.go", text: " see internal/runner (L0)."}, []string{"internal/runner"}, false},
		{"missing doc page", docText{file: "internal/repo/doc.go", text: " (docs/formats/deltas.md)"}, []string{"docs/formats/deltas.md"}, false},
		{"missing file in the package", docText{file: "internal/sysroot/sysroot.go", text: " the step names in steps.go"}, []string{"steps.go"}, false},
		{"file of another package", docText{file: "internal/cli/root.go", text: " like write.go does"}, nil, false},
		{"file with its directory", docText{file: "internal/cli/root.go", text: " sysroot/write.go and sysroot/nope.go"}, []string{"sysroot/nope.go"}, false},
		{"testdata of the package", docText{file: "internal/e2e/doc.go", text: " testdata/v1.yaml, testdata/v9.yaml"}, []string{"testdata/v9.yaml"}, false},
		{"placeholder and glob", docText{file: "internal/cli/root.go", text: " usr/lib/modules/KVER and internal/sysroot/crash_*_test.go and internal/nope/KVER"}, []string{"internal/nope"}, false},
		{"identifier after a package", docText{file: "tools/bench/pull.go", text: " (internal/pull/pulltest.Proxy)"}, nil, false},
		{"upstream citations", docText{file: "internal/repo/doc.go", text: " coreos/ignition:internal/distro/distro.go, /usr/lib/os-release, torvalds/linux:scripts/xz_wrap.sh"}, nil, false},
		{"planned package", docText{file: "docs/design.md", text: "- `internal/boot` (L3)", isDoc: true}, nil, false},
		{"markdown link", docText{file: "docs/design.md", text: "[a](formats/objects.md), [b](formats/nope.md#x), [c](https://example.com/x)", isDoc: true}, []string{"formats/nope.md"}, false},
		{"external spec", docText{file: "internal/repo/doc.go", text: " (spe" + "c/some-page.md " + "\u00a74)"}, nil, true},
		{"bare spec section", docText{file: "internal/repo/doc.go", text: " (spe" + "c \u00a74.3)"}, nil, true},
		{"the notes beside the repository", docText{file: "README.md", text: "in `../sh" + "ared/x`", isDoc: true}, nil, true},
		{"style guide", docText{file: "internal/repo/doc.go", text: " (STYL" + "E.md \u00a73)"}, nil, true},
		{"a variable named spec", docText{file: "internal/repo/doc.go", text: " spec is the manifest"}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := danglingPaths(tt.d, root, goFiles); !slices.Equal(got, tt.wantBad) {
				t.Errorf("danglingPaths(%q) = %q, want %q", tt.d.text, got, tt.wantBad)
			}
			if got := outside.MatchString(tt.d.text); got != tt.wantCited {
				t.Errorf("outside.MatchString(%q) = %v, want %v", tt.d.text, got, tt.wantCited)
			}
		})
	}
}
