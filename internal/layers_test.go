// Package internal_test holds the repository-wide rules: the package layering of
// docs/conventions.md, checked over the real import graph (cf.
// google/go-containerregistry:pkg/registry/depcheck_test.go), and the documentation paths
// (docs_test.go).
package internal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/build/constraint"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

const module = "github.com/strata-os/strata"

// Layers of the packages under internal/, cmd/ and tools/, by path inside the module
// (docs/design.md describes each). A new package must be added here, to helpers or to testOnly.
var layers = map[string]int{
	// L0: stdlib-like helpers and pure formats; standard library, golang.org/x/sys and
	// internal/errdefs only.
	"internal/errdefs":   0,
	"internal/fsutil":    0,
	"internal/gvariant":  0,
	"internal/keyfile":   0, // GKeyFile (repository config, origin files); pure like gvariant
	"internal/bsdiff":    0, // bspatch of static-delta parts; pure over byte slices
	"internal/xzenc":     0, // xz/LZMA2 encoder of static-delta parts; pure over byte slices
	"internal/distro":    0, // fixed paths and tool names of a node
	"internal/osrelease": 0, // os-release and extension-release files
	// L1: object model and wire formats.
	"internal/ostree":     1,
	"internal/sign":       1,
	"internal/graph":      1, // the release graph (Cincinnati)
	"internal/fleetlock":  1, // the FleetLock protocol
	"internal/schedule":   1, // maintenance windows
	"internal/provconfig": 1, // provisioning config: Ignition JSON and the Butane-style YAML
	// L2: stores and mechanisms. Same-layer imports need an entry in sameLayer.
	"internal/repo":       2,
	"internal/pull":       2,
	"internal/delta":      2, // static deltas
	"internal/sysroot":    2,
	"internal/bootloader": 2,
	"internal/boot":       2, // boot policy over bootloader and sysroot; image (L2) imports it
	"internal/image":      2,
	"internal/initramfs":  2,
	"internal/vm":         2,
	"internal/oci":        2, // OCI images as a transport beside pull
	"internal/sysext":     2, // system extension images: build, inspect, place, fetch
	// L3: services; they never import each other.
	"internal/compose":     3,
	"internal/prepareroot": 3,
	"internal/agent":       3,
	"internal/provision":   3,
	// L4: servers.
	"internal/graphserver": 4,
	"internal/lockserver":  4,
	// L5: commands and wiring. Nothing imports internal/cli but cmd/strata.
	"internal/cli": 5,
	// The binary: main only runs the root command of internal/cli.
	"cmd/strata": layerMain,
	// Programs beside the product (make bench): they may use any product package, but no
	// test helper and not internal/cli.
	"tools/bench":       layerTool,
	"tools/bench/synth": layerTool,
	"tools/fleetbench":  layerTool,
}

// planned are the packages in the tables that do not exist yet; every other entry must exist.
var planned = []string{}

// helpers are the test-helper packages: imported by _test.go files (and by other helpers)
// only. They may import any layer.
var helpers = []string{
	"internal/testutil",
	"internal/oci/ocitest",
	"internal/pull/pulltest",
	"internal/sysroot/sysroottest",
	"internal/vm/vmtest",
}

// testOnly are packages that hold only tests (and a doc.go): nothing imports them.
var testOnly = []string{
	"internal", // these rules
	"internal/e2e",
	"internal/interop",
	"internal/agent/fleetsim",
}

// sameLayer is the allow-list of imports between two packages of the same layer below L3,
// with the reason each one is intended. L0 packages import only internal/errdefs, and L3
// services never import each other.
var sameLayer = map[[2]string]string{
	{"internal/pull", "internal/repo"}:        "pull stores what it fetches in a repository",
	{"internal/oci", "internal/repo"}:         "oci encapsulates commits of a repository and imports images into one",
	{"internal/delta", "internal/repo"}:       "deltas are generated from and applied to a repository",
	{"internal/pull", "internal/delta"}:       "a pull applies the static deltas a remote offers",
	{"internal/sysroot", "internal/repo"}:     "a sysroot's deployments are checkouts of its repository",
	{"internal/image", "internal/repo"}:       "an image's sysroot repository is filled from the source repository",
	{"internal/image", "internal/sysroot"}:    "an image holds a sysroot that package sysroot deploys",
	{"internal/image", "internal/bootloader"}: "an image's first boot entry is written without a boot counter (bootloader.Options)",
	{"internal/image", "internal/boot"}:       "an image's ESP is written by the node's own boot policy",
	{"internal/boot", "internal/bootloader"}:  "boot policy over the ESP mechanism",
	{"internal/boot", "internal/sysroot"}:     "boot policy reads and switches the sysroot's deployments",
}

// notAllowed are imports that the layers would allow but the design rules out, with the reason.
var notAllowed = map[[2]string]string{
	{"internal/compose", "internal/image"}: "compose installs the boot units through internal/boot, not through the image builder",
}

// The programs sit above every layer: nothing imports them.
const (
	layerMain = 100
	layerTool = 101
)

// L0 may use these third-party modules and no other.
var l0Modules = []string{"golang.org/x/sys"}

// pkg is one package of `go list -deps -json`.
type pkg struct {
	ImportPath string
	Standard   bool
	DepOnly    bool
	Imports    []string
	Module     *struct{ Path string }
}

// rel returns the package's path inside this module, or "" for a package of another module.
func rel(importPath string) string {
	if importPath == module {
		return "."
	}
	if r, ok := strings.CutPrefix(importPath, module+"/"); ok {
		return r
	}
	return ""
}

func layerName(l int) string {
	switch l {
	case layerMain:
		return "main"
	case layerTool:
		return "tool"
	}
	return fmt.Sprintf("L%d", l)
}

// checkPackage returns an error when a package found under internal/, cmd/ or tools/ has no
// place in the tables.
func checkPackage(relPath string) error {
	if slices.Contains(helpers, relPath) || slices.Contains(testOnly, relPath) {
		return nil
	}
	if _, ok := layers[relPath]; !ok {
		return fmt.Errorf("package %s has no layer: add it to the layers table in internal/layers_test.go (or to helpers or testOnly); docs/design.md describes the layers", relPath)
	}
	return nil
}

// checkTables returns an error for every table entry that names a package go list did not find
// and that is not planned, and for every rule about such a package.
func checkTables(found map[string]bool) []error {
	var errs []error
	exists := func(p string) bool { return found[p] || slices.Contains(planned, p) }
	var names []string
	for p := range layers {
		names = append(names, p)
	}
	names = append(append(names, helpers...), testOnly...)
	for _, p := range names {
		if !exists(p) {
			errs = append(errs, fmt.Errorf("the tables name %s, which does not exist: remove it, or list it in planned", p))
		}
	}
	for _, rules := range []map[[2]string]string{sameLayer, notAllowed} {
		for e := range rules {
			for _, p := range e {
				if !exists(p) {
					errs = append(errs, fmt.Errorf("a rule about %s imports %s names %s, which does not exist", e[0], e[1], p))
				}
			}
		}
	}
	for _, p := range planned {
		if _, ok := layers[p]; !ok {
			errs = append(errs, fmt.Errorf("planned package %s has no layer", p))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// checkEdge returns an error when the non-test import from → to breaks the layer rules. from
// is a module package; to is any package, described by the go list entry of to (nil if go list
// had none).
func checkEdge(from string, to string, toPkg *pkg) error {
	fromRel, toRel := rel(from), rel(to)
	edge := fmt.Sprintf("%s imports %s", fromRel, to)
	if toRel != "" {
		edge = fmt.Sprintf("%s imports %s", fromRel, toRel)
	}
	if to == "C" {
		return fmt.Errorf("%s: strata is pure Go (CGO_ENABLED=0)", edge)
	}
	if toPkg != nil && toPkg.Standard {
		return nil
	}
	fromHelper := slices.Contains(helpers, fromRel)
	switch {
	case toRel != "" && slices.Contains(testOnly, toRel):
		return fmt.Errorf("%s: %s holds only tests; nothing imports it", edge, toRel)
	case toRel != "" && slices.Contains(helpers, toRel):
		if fromHelper {
			return nil // helpers build on helpers; only tests reach them
		}
		return fmt.Errorf("%s: test-helper packages are imported by _test.go files only", edge)
	case toRel == "internal/cli" && fromRel != "cmd/strata":
		return fmt.Errorf("%s: nothing but cmd/strata imports internal/cli", edge)
	}
	fromLayer, fromKnown := layers[fromRel]
	switch {
	case fromHelper || slices.Contains(testOnly, fromRel) || !fromKnown:
		return nil // helpers may use any layer; an unknown package fails checkPackage instead
	case fromLayer == layerMain:
		if toRel == "internal/cli" {
			return nil
		}
		return fmt.Errorf("%s: cmd/strata imports only internal/cli and the standard library", edge)
	case fromLayer == layerTool:
		return nil // a tool may use any product package; helpers and cli are refused above
	}

	if toRel == "" || !(strings.HasPrefix(toRel, "internal/") || strings.HasPrefix(toRel, "cmd/") || strings.HasPrefix(toRel, "tools/")) {
		// Another module (or a future pkg/ contract of this one).
		if fromLayer > 0 {
			return nil
		}
		mod := ""
		if toPkg != nil && toPkg.Module != nil {
			mod = toPkg.Module.Path
		}
		if slices.Contains(l0Modules, mod) {
			return nil
		}
		return fmt.Errorf("%s: L0 uses the standard library, %s and internal/errdefs only", edge, strings.Join(l0Modules, ", "))
	}

	toLayer, ok := layers[toRel]
	if !ok {
		return nil // reported by checkPackage on toRel itself
	}
	if why, ok := notAllowed[[2]string{fromRel, toRel}]; ok {
		return fmt.Errorf("%s: not allowed: %s", edge, why)
	}
	switch {
	case toLayer == layerMain || toLayer == layerTool:
		return fmt.Errorf("%s: nothing imports a program", edge)
	case fromLayer == 0 && toRel != "internal/errdefs":
		return fmt.Errorf("%s (%s): L0 imports only internal/errdefs among strata's packages", edge, layerName(toLayer))
	case toLayer > fromLayer:
		return fmt.Errorf("%s (%s imports %s): imports only point downward", edge, layerName(fromLayer), layerName(toLayer))
	case toLayer == fromLayer && fromLayer >= 3:
		// L3 services declare the small interface they need and the wiring passes the concrete
		// type in (docs/conventions.md).
		return fmt.Errorf("%s (both %s): L3 services never import each other, nor L4 packages", edge, layerName(fromLayer))
	case toLayer == fromLayer && fromLayer > 0:
		if _, ok := sameLayer[[2]string{fromRel, toRel}]; !ok {
			return fmt.Errorf("%s (both %s): a same-layer import needs an entry, with its reason, in sameLayer in internal/layers_test.go", edge, layerName(fromLayer))
		}
	}
	return nil
}

// goListDeps runs `go list -deps -json` over internal/, cmd/ and tools/ with the given build
// tags.
func goListDeps(t *testing.T, tags string) []pkg {
	t.Helper()
	// go test puts its own GOROOT/bin first on the test's PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found on PATH: %v", err)
	}
	args := []string{"list", "-e", "-deps", "-json=ImportPath,Standard,DepOnly,Imports,Module"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "./internal/...", "./cmd/...", "./tools/...")
	cmd := exec.Command(goTool, args...)
	cmd.Dir = testutil.RepoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// nonTestTags returns the build tags that the constraints of non-test Go files under root
// mention, sorted. go list -deps sees only non-test files, so these are the tags under which
// the import graph can differ from the default one.
func nonTestTags(t *testing.T, root string) []string {
	t.Helper()
	tags := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !constraint.IsGoBuild(line) {
				if strings.HasPrefix(line, "package ") {
					break
				}
				continue
			}
			expr, err := constraint.Parse(line)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			expr.Eval(func(tag string) bool { tags[tag] = true; return true })
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading build constraints: %v", err)
	}
	var out []string
	for tag := range tags {
		out = append(out, tag)
	}
	sort.Strings(out)
	return out
}

// TestLayers checks every non-test import of every package under internal/, cmd/ and tools/,
// with the default build tags and, when non-test files carry build constraints, with every tag
// they mention.
func TestLayers(t *testing.T) {
	t.Parallel()
	root := testutil.RepoRoot(t)
	passes := []string{""}
	if tags := nonTestTags(t, root); len(tags) > 0 {
		passes = append(passes, strings.Join(tags, ","))
	}
	for _, tags := range passes {
		t.Run("tags="+tags, func(t *testing.T) {
			t.Parallel()
			pkgs := goListDeps(t, tags)
			byPath := make(map[string]*pkg, len(pkgs))
			for i := range pkgs {
				byPath[pkgs[i].ImportPath] = &pkgs[i]
			}
			found := map[string]bool{}
			for _, p := range pkgs {
				r := rel(p.ImportPath)
				if p.DepOnly || r == "" {
					continue
				}
				found[r] = true
				if err := checkPackage(r); err != nil {
					t.Error(err)
				}
				for _, imp := range p.Imports {
					if err := checkEdge(p.ImportPath, imp, byPath[imp]); err != nil {
						t.Error(err)
					}
				}
			}
			if !found["internal/repo"] || !found["cmd/strata"] || !found["tools/bench"] {
				t.Fatalf("go list did not find internal/repo, cmd/strata and tools/bench (found %d packages)", len(found))
			}
			for _, err := range checkTables(found) {
				t.Error(err)
			}
		})
	}
}

// TestLayerRules pins the rules themselves on made-up edges.
func TestLayerRules(t *testing.T) {
	t.Parallel()
	std := &pkg{Standard: true}
	mod := func(path string) *pkg { return &pkg{Module: &struct{ Path string }{path}} }
	m := func(r string) string { return module + "/" + r }
	tests := []struct {
		name    string
		from    string
		to      string
		toPkg   *pkg
		wantErr string // substring; "" for an allowed edge
	}{
		{"L0 to stdlib", m("internal/gvariant"), "fmt", std, ""},
		{"L0 to errdefs", m("internal/fsutil"), m("internal/errdefs"), nil, ""},
		{"L0 to x/sys", m("internal/fsutil"), "golang.org/x/sys/unix", mod("golang.org/x/sys"), ""},
		{"L0 to another module", m("internal/gvariant"), "github.com/google/go-cmp/cmp", mod("github.com/google/go-cmp"), "internal/gvariant imports github.com/google/go-cmp/cmp: L0 uses"},
		{"L0 to L0 other than errdefs", m("internal/fsutil"), m("internal/gvariant"), nil, "internal/fsutil imports internal/gvariant (L0): L0 imports only internal/errdefs"},
		{"L1 to L0", m("internal/ostree"), m("internal/gvariant"), nil, ""},
		{"L1 to another module", m("internal/sign"), "github.com/ProtonMail/go-crypto/openpgp", mod("github.com/ProtonMail/go-crypto"), ""},
		{"L1 to L1, not in the allow-list", m("internal/sign"), m("internal/ostree"), nil, "internal/sign imports internal/ostree (both L1): a same-layer import needs an entry"},
		{"L1 to L2", m("internal/ostree"), m("internal/repo"), nil, "internal/ostree imports internal/repo (L1 imports L2): imports only point downward"},
		{"L2 to L2 in the allow-list", m("internal/pull"), m("internal/repo"), nil, ""},
		{"planned L2 edge", m("internal/image"), m("internal/boot"), nil, ""},
		{"L2 to L2 not in the allow-list", m("internal/repo"), m("internal/sysroot"), nil, "internal/repo imports internal/sysroot (both L2): a same-layer import needs an entry"},
		{"L2 to L2 the other way round", m("internal/repo"), m("internal/pull"), nil, "internal/repo imports internal/pull (both L2)"},
		{"L2 to L3", m("internal/repo"), m("internal/compose"), nil, "internal/repo imports internal/compose (L2 imports L3)"},
		{"L3 to L2", m("internal/compose"), m("internal/repo"), nil, ""},
		{"L3 to L2, ruled out", m("internal/compose"), m("internal/image"), nil, "internal/compose imports internal/image: not allowed: compose installs the boot units through internal/boot"},
		{"L3 to L3", m("internal/compose"), m("internal/prepareroot"), nil, "internal/compose imports internal/prepareroot (both L3): L3 services never import each other"},
		{"L3 to cli", m("internal/compose"), m("internal/cli"), nil, "internal/compose imports internal/cli: nothing but cmd/strata imports internal/cli"},
		{"cli to L3", m("internal/cli"), m("internal/compose"), nil, ""},
		{"cli to a module", m("internal/cli"), "github.com/spf13/cobra", mod("github.com/spf13/cobra"), ""},
		{"main to cli", m("cmd/strata"), m("internal/cli"), nil, ""},
		{"main to stdlib", m("cmd/strata"), "os", std, ""},
		{"main to repo", m("cmd/strata"), m("internal/repo"), nil, "cmd/strata imports internal/repo: cmd/strata imports only internal/cli"},
		{"main to a module", m("cmd/strata"), "github.com/spf13/cobra", mod("github.com/spf13/cobra"), "cmd/strata imports github.com/spf13/cobra"},
		{"tool to repo", m("tools/bench"), m("internal/repo"), nil, ""},
		{"tool to a helper", m("tools/bench"), m("internal/pull/pulltest"), nil, "tools/bench imports internal/pull/pulltest: test-helper packages are imported by _test.go files only"},
		{"tool to cli", m("tools/bench"), m("internal/cli"), nil, "tools/bench imports internal/cli: nothing but cmd/strata"},
		{"code to a tool", m("internal/cli"), m("tools/bench/synth"), nil, "internal/cli imports tools/bench/synth: nothing imports a program"},
		{"code to testutil", m("internal/repo"), m("internal/testutil"), nil, "internal/repo imports internal/testutil: test-helper packages are imported by _test.go files only"},
		{"code to vmtest", m("internal/cli"), m("internal/vm/vmtest"), nil, "internal/cli imports internal/vm/vmtest: test-helper"},
		{"code to a package named like a helper", m("internal/cli"), m("internal/latest"), nil, ""},
		{"code to a test-only package", m("internal/cli"), m("internal/interop"), nil, "internal/cli imports internal/interop: internal/interop holds only tests"},
		{"helper to helper", m("internal/vm/vmtest"), m("internal/testutil"), nil, ""},
		{"helper to L2", m("internal/vm/vmtest"), m("internal/vm"), nil, ""},
		{"cgo", m("internal/fsutil"), "C", nil, "internal/fsutil imports C: strata is pure Go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkEdge(tt.from, tt.to, tt.toPkg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkEdge(%s, %s) = %v, want nil", tt.from, tt.to, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkEdge(%s, %s) = %v, want an error containing %q", tt.from, tt.to, err, tt.wantErr)
			}
		})
	}

	for _, tt := range []struct {
		name    string
		pkg     string
		wantErr bool
	}{
		{"in the table", "internal/repo", false},
		{"helper", "internal/sysroot/sysroottest", false},
		{"test only", "internal/interop", false},
		{"named like a helper but not listed", "internal/repo/repotest", true},
		{"not in the table", "internal/frobnicate", true},
		{"sub-package not in the table", "internal/repo/archive", true},
		{"another command", "cmd/other", true},
		{"another tool", "tools/other", true},
	} {
		t.Run("package "+tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkPackage(tt.pkg)
			if (err != nil) != tt.wantErr {
				t.Errorf("checkPackage(%s) = %v, want error %v", tt.pkg, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "add it to the layers table") {
				t.Errorf("checkPackage(%s) = %v, want it to say where to add the package", tt.pkg, err)
			}
		})
	}

	t.Run("tables", func(t *testing.T) {
		t.Parallel()
		found := map[string]bool{}
		for p := range layers {
			found[p] = true
		}
		for _, p := range append(slices.Clone(helpers), testOnly...) {
			found[p] = true
		}
		if errs := checkTables(found); len(errs) != 0 {
			t.Errorf("checkTables(every package) = %v, want none", errs)
		}
		delete(found, "internal/prepareroot")
		delete(found, "internal/pull")
		errs := checkTables(found)
		var got []string
		for _, err := range errs {
			got = append(got, err.Error())
		}
		want := []string{
			"a rule about internal/pull imports internal/delta names internal/pull, which does not exist",
			"a rule about internal/pull imports internal/repo names internal/pull, which does not exist",
			"the tables name internal/prepareroot, which does not exist: remove it, or list it in planned",
			"the tables name internal/pull, which does not exist: remove it, or list it in planned",
		}
		if !slices.Equal(got, want) {
			t.Errorf("checkTables(without prepareroot and pull) = %q, want %q", got, want)
		}
	})
}
