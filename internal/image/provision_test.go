package image

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/provconfig"
)

func TestEmbedProvision(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := embedProvision(root, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, provconfig.FirstBootMark)); !os.IsNotExist(err) {
		t.Errorf("without a config, the mark: %v; want none", err)
	}
	cfg := []byte(`{"ignition":{"version":"3.4.0"}}`)
	if err := embedProvision(root, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, provconfig.FirstBootConfig))
	if err != nil || string(got) != string(cfg) {
		t.Errorf("embedded config = %q, %v; want %q", got, err, cfg)
	}
	for _, p := range []string{provconfig.FirstBootConfig, provconfig.FirstBootMark} {
		if st, err := os.Stat(filepath.Join(root, p)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", p, st, err)
		}
	}
}
