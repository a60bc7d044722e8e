package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func cfgRun(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestConfigCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	os.Mkdir(files, 0o755)
	os.WriteFile(filepath.Join(files, "motd"), []byte("hello\n"), 0o644)
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	good := write("good.yaml", "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contents:\n        local: motd\n")
	unknown := write("unknown.yaml", "variant: fcos\nversion: 1.5.0\nstorage:\n  file:\n    - path: /etc/motd\n")
	badJSON := write("bad.ign", `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"relative"}]}}`)
	newer := write("newer.ign", `{"ignition":{"version":"3.6.0"}}`)
	out := filepath.Join(dir, "out.ign")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"translate", []string{"config", "translate", good, "--files-dir", files, "-o", out}, 0, "", ""},
		{"translate to stdout", []string{"config", "translate", good, "--files-dir", files}, 0, `"source": "data:,hello%0A"`, ""},
		{"translate without files dir", []string{"config", "translate", good}, 1, "",
			`error at $.storage.files.0.contents.local, line 8 col 16: local file "motd" needs a files directory (--files-dir)`},
		{"unknown key", []string{"config", "translate", unknown}, 1, "", "error at $.storage.file, line 4 col 3: unknown key file"},
		{"validate YAML", []string{"config", "validate", good, "--files-dir", files}, 0, "", ""},
		{"validate translated", []string{"config", "validate", out}, 0, "", ""},
		{"validate invalid", []string{"config", "validate", badJSON}, 1, "", "error at $.storage.files.0.path, line 1 col 61: path not absolute"},
		{"validate JSON output", []string{"config", "validate", "--json", badJSON}, 1, `"path": "$.storage.files.0.path"`, ""},
		{"unsupported version", []string{"config", "validate", newer}, 1, "", `unsupported config version "3.6.0"`},
		{"usage", []string{"config", "translate"}, 2, "", "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cfgRun(t, "", tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("strata %s = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
					strings.Join(tt.args, " "), code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
	var cfg map[string]any
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &cfg); err != nil || cfg["ignition"].(map[string]any)["version"] != "3.4.0" {
		t.Errorf("translated config %s = %v, %v; want Ignition 3.4.0", data, cfg, err)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Errorf("translated config mode = %o, want 0600 (configs carry secrets)", st.Mode().Perm())
	}
}
