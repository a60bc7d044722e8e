// Package internal_test enforces the package layering of STYLE.md §3 over the real import graph
// (cf. google/go-containerregistry:pkg/registry/depcheck_test.go).
package internal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

const module = "github.com/strata-os/strata"

// Layers of the packages under internal/ and cmd/, by path inside the module (STYLE.md §2–3).
// A new package must be added here; test-helper packages (testutil, *test) need no entry.
var layers = map[string]int{
	// L0: stdlib-like helpers and pure formats; standard library, golang.org/x/sys and
	// internal/errdefs only.
	"internal/errdefs":  0,
	"internal/fsutil":   0,
	"internal/gvariant": 0,
	"internal/keyfile":  0, // GKeyFile format (repo config, origin files); pure like gvariant
	"internal/runner":   0,
	// L1: object model and wire formats.
	"internal/ostree":     1,
	"internal/sign":       1,
	"internal/provconfig": 1, // provisioning config: Ignition JSON and the Butane-style YAML
	// L2: stores and mechanisms.
	"internal/repo":       2,
	"internal/pull":       2,
	"internal/sysroot":    2,
	"internal/bootloader": 2,
	"internal/image":      2,
	"internal/vm":         2,
	"internal/initramfs":  2,
	// L3: services; they never import each other.
	"internal/deploy":      3,
	"internal/health":      3,
	"internal/compose":     3,
	"internal/provision":   3,
	"internal/agent":       3,
	"internal/prepareroot": 3,
	// L4: commands and wiring; nothing imports internal/cli but cmd/strata.
	"internal/cli": 4,
	// The binary: main only runs the root command of internal/cli (STYLE.md §9).
	"cmd/strata": layerMain,
}

const layerMain = 5

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
	if r, ok := strings.CutPrefix(importPath, module+"/"); ok {
		return r
	}
	return ""
}

// isHelper reports whether a module package is a test helper (testutil, vmtest, repotest, ...),
// which only tests may import, or a black-box test package (interop, e2e) that holds only tests.
func isHelper(relPath string) bool {
	base := path.Base(relPath)
	return base == "testutil" || base == "interop" || base == "e2e" || strings.HasSuffix(base, "test")
}

func layerName(l int) string {
	if l == layerMain {
		return "main"
	}
	return fmt.Sprintf("L%d", l)
}

// checkPackage returns an error when a package under internal/ or cmd/ has no place in the table.
func checkPackage(relPath string) error {
	if isHelper(relPath) {
		return nil
	}
	if _, ok := layers[relPath]; !ok {
		return fmt.Errorf("package %s has no layer: add it to the layers table in internal/layers_test.go (STYLE.md §2 lists the layers)", relPath)
	}
	return nil
}

// checkEdge returns an error when the non-test import from → to breaks STYLE.md §3. from is a
// module package; to is any package, described by the go list entry of to (nil if go list had none).
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
	fromLayer, fromKnown := layers[fromRel]

	switch {
	case toRel != "" && isHelper(toRel):
		if isHelper(fromRel) {
			return nil // helpers build on helpers; only tests reach them
		}
		return fmt.Errorf("%s: test-helper packages are imported by _test.go files only", edge)
	case toRel == "internal/cli" && fromRel != "cmd/strata":
		return fmt.Errorf("%s: nothing but cmd/strata imports internal/cli", edge)
	case isHelper(fromRel) || !fromKnown:
		return nil // helpers may use any layer; an unknown package fails checkPackage instead
	case fromLayer == layerMain:
		if toRel == "internal/cli" {
			return nil
		}
		return fmt.Errorf("%s: cmd/strata imports only internal/cli and the standard library", edge)
	}

	if toRel == "" || !(strings.HasPrefix(toRel, "internal/") || strings.HasPrefix(toRel, "cmd/")) {
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
	switch {
	case fromLayer == 0 && toRel != "internal/errdefs":
		return fmt.Errorf("%s (%s): L0 imports only internal/errdefs among strata's packages", edge, layerName(toLayer))
	case toLayer > fromLayer:
		return fmt.Errorf("%s (%s imports %s): imports only point downward", edge, layerName(fromLayer), layerName(toLayer))
	case toLayer == fromLayer && fromLayer >= 3:
		// L3 services declare the small interface they need and the wiring passes the concrete
		// type in (STYLE.md §3).
		return fmt.Errorf("%s (both %s): L3 services never import each other, nor L4 packages", edge, layerName(fromLayer))
	}
	// Same-layer imports below L3 are allowed: pull and sysroot work on a repo, image on a
	// sysroot (DESIGN.md, Packages); Go itself forbids the cycles.
	return nil
}

// goListDeps runs `go list -deps -json` over internal/ and cmd/ with the given build tags.
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
	args = append(args, "./internal/...", "./cmd/...")
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

// TestLayers checks every non-test import of every package under internal/ and cmd/, with the
// default build tags and with the test tiers' tags (whose non-test files count as well).
func TestLayers(t *testing.T) {
	t.Parallel()
	for _, tags := range []string{"", "root,peer,vm"} {
		t.Run("tags="+tags, func(t *testing.T) {
			t.Parallel()
			pkgs := goListDeps(t, tags)
			byPath := make(map[string]*pkg, len(pkgs))
			for i := range pkgs {
				byPath[pkgs[i].ImportPath] = &pkgs[i]
			}
			checked := 0
			for _, p := range pkgs {
				r := rel(p.ImportPath)
				if p.DepOnly || r == "" || r == "internal" { // internal itself holds only this test
					continue
				}
				checked++
				if err := checkPackage(r); err != nil {
					t.Error(err)
				}
				for _, imp := range p.Imports {
					if err := checkEdge(p.ImportPath, imp, byPath[imp]); err != nil {
						t.Error(err)
					}
				}
			}
			if checked == 0 {
				t.Fatal("go list found no package under internal/ or cmd/")
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
		{"L1 to L1", m("internal/sign"), m("internal/ostree"), nil, ""},
		{"L1 to L2", m("internal/ostree"), m("internal/repo"), nil, "internal/ostree imports internal/repo (L1 imports L2): imports only point downward"},
		{"L2 to L2", m("internal/pull"), m("internal/repo"), nil, ""},
		{"L2 to L3", m("internal/repo"), m("internal/deploy"), nil, "internal/repo imports internal/deploy (L2 imports L3)"},
		{"L3 to L2", m("internal/deploy"), m("internal/sysroot"), nil, ""},
		{"L3 to L3", m("internal/agent"), m("internal/deploy"), nil, "internal/agent imports internal/deploy (both L3): L3 services never import each other"},
		{"L3 to cli", m("internal/agent"), m("internal/cli"), nil, "internal/agent imports internal/cli: nothing but cmd/strata imports internal/cli"},
		{"cli to L3", m("internal/cli"), m("internal/agent"), nil, ""},
		{"cli to a module", m("internal/cli"), "github.com/spf13/cobra", mod("github.com/spf13/cobra"), ""},
		{"main to cli", m("cmd/strata"), m("internal/cli"), nil, ""},
		{"main to stdlib", m("cmd/strata"), "os", std, ""},
		{"main to repo", m("cmd/strata"), m("internal/repo"), nil, "cmd/strata imports internal/repo: cmd/strata imports only internal/cli"},
		{"main to a module", m("cmd/strata"), "github.com/spf13/cobra", mod("github.com/spf13/cobra"), "cmd/strata imports github.com/spf13/cobra"},
		{"code to testutil", m("internal/repo"), m("internal/testutil"), nil, "internal/repo imports internal/testutil: test-helper packages are imported by _test.go files only"},
		{"code to a *test helper", m("internal/cli"), m("internal/bootloader/bootloadertest"), nil, "internal/cli imports internal/bootloader/bootloadertest: test-helper"},
		{"helper to helper", m("internal/repo/repotest"), m("internal/testutil"), nil, ""},
		{"helper to L2", m("internal/vmtest"), m("internal/vm"), nil, ""},
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
		{"not in the table", "internal/frobnicate", true},
		{"sub-package not in the table", "internal/repo/archive", true},
		{"another command", "cmd/other", true},
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
}
