package keyfile

import "testing"

func TestRoundTripAndSet(t *testing.T) {
	t.Parallel()
	in := "# comment\n[core]\nrepo_version=1\nmode=archive-z2\n\n[remote \"origin\"]\nurl=http://x/\n"
	f, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Bytes()); got != in {
		t.Errorf("Bytes() = %q, want %q", got, in)
	}
	if v, _ := f.Get("core", "mode"); v != "archive-z2" {
		t.Errorf("Get(core, mode) = %q, want archive-z2", v)
	}
	f.Set("core", "fsync", "false")
	f.Set(`remote "b"`, "url", " lead\\ing")
	f.Delete(`remote "origin"`, "")
	want := "# comment\n[core]\nrepo_version=1\nmode=archive-z2\nfsync=false\n\n[remote \"b\"]\nurl=\\slead\\\\ing\n"
	if got := string(f.Bytes()); got != want {
		t.Errorf("after edits Bytes() = %q, want %q", got, want)
	}
	if v, _ := f.Get(`remote "b"`, "url"); v != " lead\\ing" {
		t.Errorf("Get = %q, want %q", v, " lead\\ing")
	}
	if g := f.Groups(); len(g) != 2 || g[1] != `remote "b"` {
		t.Errorf("Groups() = %q", g)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"key outside group": "a=b\n",
		"bad header":        "[core\n",
		"no equals":         "[core]\nfoo\n",
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: Parse(%q) succeeded, want error", name, in)
		}
	}
}
