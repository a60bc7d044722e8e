package bootloader

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

// fixture makes source kernels for deployments and builds Entry values.
type fixture struct {
	t   *testing.T
	src string
}

func newFixture(t *testing.T) *fixture {
	return &fixture{t: t, src: t.TempDir()}
}

// entry returns the entry of deployment dep of stateroot "os" with the
// kernel named by bootcsum (its content derives from it).
func (f *fixture) entry(dep, bootcsum, options string) Entry {
	f.t.Helper()
	dir := filepath.Join(f.src, bootcsum)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	k, i := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initramfs.img")
	for _, p := range []string{k, i} {
		if err := os.WriteFile(p, []byte(filepath.Base(p)+" of "+bootcsum+"\n"), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	return Entry{OS: "os", Deployment: dep, BootChecksum: bootcsum, KernelVer: "6.1.0", Kernel: k, Initramfs: i,
		Title: "Test OS " + dep, Options: "root=LABEL=strata-root rw " + options}
}

// state is an ESP's entries in firmware-relevant form: deployment and
// counter, highest ORD first, plus the kernel directories.
type state struct {
	Entries []string // "DEPLOYMENT SUFFIX"
	Kernels []string
}

func espState(t *testing.T, esp string) state {
	t.Helper()
	ents, err := Entries(esp)
	if err != nil {
		t.Fatal(err)
	}
	var st state
	for _, e := range ents {
		st.Entries = append(st.Entries, strings.TrimPrefix(e.Deployment, "os ")+" "+e.Suffix)
	}
	des, _ := os.ReadDir(filepath.Join(esp, kernelsDir))
	for _, d := range des {
		st.Kernels = append(st.Kernels, d.Name())
	}
	return st
}

// listing returns every file under dir with its content.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustSync(t *testing.T, esp string, list []Entry, opts Options) {
	t.Helper()
	if err := Sync(context.Background(), esp, list, opts); err != nil {
		t.Fatalf("Sync(%v) = %v", deps(list), err)
	}
}

func deps(list []Entry) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.Deployment)
	}
	return out
}

func TestSyncLayout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.entry("aaaa.0", "k1", "ostree=/ostree/boot.1/os/k1/0")
	esp := t.TempDir()
	mustSync(t, esp, []Entry{a}, Options{Tries: 3, Timeout: 2})

	files := listing(t, esp)
	name := "strata-1-os-" + a.ID() + ".conf"
	want := map[string]string{
		"loader/loader.conf":               "timeout 2\ndefault strata-*\neditor no\nauto-entries no\nauto-firmware no\nconsole-mode keep\n",
		"loader/entries/" + name:           "# strata-deployment os aaaa.0\ntitle Test OS aaaa.0\nlinux /strata/os-k1/vmlinuz-6.1.0\ninitrd /strata/os-k1/initramfs-6.1.0.img\noptions root=LABEL=strata-root rw ostree=/ostree/boot.1/os/k1/0\n",
		"strata/os-k1/vmlinuz-6.1.0":       "vmlinuz of k1\n",
		"strata/os-k1/initramfs-6.1.0.img": "initramfs.img of k1\n",
	}
	// A first entry that has not booted is the new default: it is counted.
	want["loader/entries/strata-1-os-"+a.ID()+"+3.conf"] = want["loader/entries/"+name]
	delete(want, "loader/entries/"+name)
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("ESP after Sync([a]) (-want +got):\n%s", diff)
	}
	if got, err := FirmwareChoice(esp); err != nil || got != "strata-1-os-"+a.ID()+"+3.conf" {
		t.Errorf("FirmwareChoice = %q, %v, want a's entry", got, err)
	}
}

func TestSyncCounters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.entry("aaaa.0", "k1", "ostree=/ostree/boot.1/os/k1/0")
	b := f.entry("bbbb.0", "k2", "ostree=/ostree/boot.0/os/k2/0")
	a2 := f.entry("aaaa.0", "k1", "ostree=/ostree/boot.0/os/k1/0") // a, after a boot version switch
	booted := func(e Entry) Entry { e.Booted = true; return e }
	tests := []struct {
		name  string
		steps [][]Entry
		tries int
		bad   string // deployment whose entry is marked bad before the last step
		want  []string
	}{
		{"fresh image without counting", [][]Entry{{a}}, 0, "", []string{"aaaa.0 "}},
		{"booted default is not counted", [][]Entry{{booted(a)}}, 3, "", []string{"aaaa.0 "}},
		{"upgrade counts the new default only", [][]Entry{{booted(a)}, {b, booted(a2)}}, 3, "",
			[]string{"bbbb.0 +3", "aaaa.0 "}},
		{"same content is renamed with its counter", [][]Entry{{a}, {b, a}}, 3, "",
			[]string{"bbbb.0 +3", "aaaa.0 +3"}},
		{"new content carries the deployment's counter", [][]Entry{{booted(a)}, {b, booted(a2)}, {booted(a), b}}, 3, "bbbb.0",
			[]string{"aaaa.0 ", "bbbb.0 +0-0"}},
		{"rollback to an unbooted blessed deployment stays blessed", [][]Entry{{booted(a)}, {b, booted(a2)}, {a, booted(b)}}, 3, "",
			[]string{"aaaa.0 ", "bbbb.0 +3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			esp := t.TempDir()
			for i, list := range tt.steps {
				if i == len(tt.steps)-1 && tt.bad != "" {
					e, ok := FindDeployment(mustEntries(t, esp), "os "+tt.bad)
					if !ok {
						t.Fatalf("no entry of %s", tt.bad)
					}
					if _, err := MarkBad(esp, e.File); err != nil {
						t.Fatal(err)
					}
				}
				mustSync(t, esp, list, Options{Tries: tt.tries})
			}
			if diff := cmp.Diff(tt.want, espState(t, esp).Entries); diff != "" {
				t.Errorf("entries after Sync of %d lists (-want +got):\n%s", len(tt.steps), diff)
			}
		})
	}
}

func mustEntries(t *testing.T, esp string) []ESPEntry {
	t.Helper()
	ents, err := Entries(esp)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

func TestSyncConverges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.entry("aaaa.0", "k1", "x=1")
	b := f.entry("bbbb.0", "k2", "x=2")
	esp := t.TempDir()
	foreign := filepath.Join(esp, "loader/entries/debian.conf")
	mustSync(t, esp, []Entry{a}, Options{Tries: 3})
	if err := os.WriteFile(foreign, []byte("linux /vmlinuz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustSync(t, esp, []Entry{b, a}, Options{Tries: 3})
	before := listing(t, esp)
	mustSync(t, esp, []Entry{b, a}, Options{Tries: 3})
	if diff := cmp.Diff(before, listing(t, esp)); diff != "" {
		t.Errorf("second Sync of the same list changed the ESP (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("foreign entry after Sync: %v, want it kept", err)
	}
	// Back to [a]: b's entry and kernel go.
	mustSync(t, esp, []Entry{a}, Options{Tries: 3})
	if diff := cmp.Diff(state{Entries: []string{"aaaa.0 +3"}, Kernels: []string{"os-k1"}}, espState(t, esp)); diff != "" {
		t.Errorf("ESP after Sync([a]) (-want +got):\n%s", diff)
	}
}

func TestSyncRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.entry("aaaa.0", "k1", "x=1")
	bad := a
	bad.OS = "a/b"
	multi := a
	multi.Options = "x\ny"
	tests := []struct {
		name string
		list []Entry
	}{
		{"empty", nil},
		{"twice", []Entry{a, a}},
		{"slash in stateroot", []Entry{bad}},
		{"newline in options", []Entry{multi}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			esp := t.TempDir()
			if err := Sync(context.Background(), esp, tt.list, Options{}); err == nil {
				t.Errorf("Sync(%s) = nil, want an error", tt.name)
			}
			if files := listing(t, esp); len(files) != 0 {
				t.Errorf("Sync(%s) wrote %v, want nothing", tt.name, files)
			}
		})
	}
}

var errCrash = errors.New("crash")

// TestSyncCrashMatrix interrupts Sync after every step of several
// transitions and checks that firmware would boot the old or the new
// default with complete files, and that the next Sync converges on the
// state an uninterrupted Sync reaches.
func TestSyncCrashMatrix(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.entry("aaaa.0", "k1", "ostree=/ostree/boot.1/os/k1/0")
	b := f.entry("bbbb.0", "k1", "ostree=/ostree/boot.1/os/k1/1")
	a0 := f.entry("aaaa.0", "k1", "ostree=/ostree/boot.0/os/k1/1")
	c0 := f.entry("cccc.0", "k2", "ostree=/ostree/boot.0/os/k2/0")
	booted := func(e Entry) Entry { e.Booted = true; return e }
	tests := []struct {
		name     string
		old, new []Entry
	}{
		{"upgrade with a new kernel", []Entry{booted(a), b}, []Entry{c0, booted(a0)}},
		{"rollback, same entries reordered", []Entry{a, b}, []Entry{b, a}},
		{"first sync", nil, []Entry{a}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ref := t.TempDir()
			if tt.old != nil {
				mustSync(t, ref, tt.old, Options{Tries: 3})
			}
			oldChoice := ""
			if tt.old != nil {
				oldChoice = choiceDeployment(t, ref)
			}
			mustSync(t, ref, tt.new, Options{Tries: 3})
			want := espState(t, ref)
			newChoice := choiceDeployment(t, ref)
			for k := 1; ; k++ {
				esp := t.TempDir()
				if tt.old != nil {
					mustSync(t, esp, tt.old, Options{Tries: 3})
				}
				n := 0
				err := Sync(context.Background(), esp, tt.new, Options{Tries: 3, StepHook: func(string) error {
					if n++; n == k {
						return errCrash
					}
					return nil
				}})
				if err == nil {
					if k <= 2 {
						t.Fatalf("Sync made %d steps, want at least 2", k-1)
					}
					break // k is past the last step
				}
				if !errors.Is(err, errCrash) {
					t.Fatalf("Sync crashing at step %d = %v, want the crash", k, err)
				}
				got, err := FirmwareChoice(esp)
				switch {
				case errors.Is(err, errdefs.ErrNotFound) && tt.old == nil:
					// Nothing was bootable before either.
				case err != nil:
					t.Fatalf("crash at step %d: FirmwareChoice = %v", k, err)
				default:
					dep := entryDeploymentOf(t, esp, got)
					if dep != oldChoice && dep != newChoice {
						t.Errorf("crash at step %d: firmware boots %s, want %q or %q", k, dep, oldChoice, newChoice)
					}
					checkComplete(t, esp, got, append(slices.Clone(tt.old), tt.new...))
				}
				mustSync(t, esp, tt.new, Options{Tries: 3})
				if diff := cmp.Diff(want, espState(t, esp)); diff != "" {
					t.Errorf("crash at step %d, then Sync: ESP (-uninterrupted +recovered):\n%s", k, diff)
				}
			}
		})
	}
}

func choiceDeployment(t *testing.T, esp string) string {
	t.Helper()
	got, err := FirmwareChoice(esp)
	if err != nil {
		t.Fatal(err)
	}
	return entryDeploymentOf(t, esp, got)
}

func entryDeploymentOf(t *testing.T, esp, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(esp, entriesDir, file))
	if err != nil {
		t.Fatal(err)
	}
	return entryDeployment(data)
}

// checkComplete checks that the entry's kernel and initramfs are on the
// ESP with the content of one of the sources.
func checkComplete(t *testing.T, esp, file string, sources []Entry) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(esp, entriesDir, file))
	if err != nil {
		t.Fatal(err)
	}
	kv := parseEntry(data)
	for _, key := range []string{"linux", "initrd"} {
		got, err := os.ReadFile(filepath.Join(esp, kv[key]))
		if err != nil {
			t.Errorf("entry %s: %s %s: %v", file, key, kv[key], err)
			continue
		}
		ok := false
		for _, e := range sources {
			src := e.Kernel
			if key == "initrd" {
				src = e.Initramfs
			}
			if strings.HasPrefix(kv[key], "/"+e.KernelDir()+"/") {
				want, _ := os.ReadFile(src)
				ok = string(got) == string(want)
			}
		}
		if !ok {
			t.Errorf("entry %s: %s %s is incomplete: %q", file, key, kv[key], got)
		}
	}
}
