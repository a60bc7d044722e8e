package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinkerDropsUnusedMethods links the binary as `make build` does (its build tags) and fails
// when any reachable function calls methods by reflection with a name the compiler cannot see
// (reflect.Value.Method, MethodByName with a variable, a template execution, the Go 1.26 method
// iterators): the linker then keeps every exported method of every reachable type, which made
// the binary a fifth larger and every command, the update agent included, touch that much more
// of it at start (docs/benchmarks.md, "Update services"). The failure names the chain of callers
// that made the first such function reachable.
func TestLinkerDropsUnusedMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("links the whole binary")
	}
	out := filepath.Join(t.TempDir(), "strata")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags=-dumpdep", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	// go build passes on the linker's output on its standard error.
	dump, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build -ldflags=-dumpdep: %v\n%.4000s", err, dump)
	}
	// Each line is "parent -> child", a symbol's flags after it in angle brackets; the first
	// line that reaches a symbol names the parent that made it reachable.
	parent := map[string]string{}
	var first string
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			continue
		}
		name, flags, _ := strings.Cut(to, " <")
		from, _, _ = strings.Cut(from, " <")
		if _, seen := parent[name]; !seen {
			parent[name] = from
		}
		if first == "" && strings.Contains(flags, "ReflectMethod") {
			first = name
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if first == "" {
		return
	}
	chain := []string{first}
	for p := parent[first]; p != "" && p != "_" && len(chain) < 40; p = parent[p] {
		chain = append(chain, p)
	}
	t.Fatalf("a reachable function calls methods by reflection, so the linker keeps every exported method:\n  %s",
		strings.Join(chain, "\n  <- "))
}
