//go:build root && peer

package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm/vmtest"
)

// TestVMBoot boots Debian's kernel with the vm package's test /init (internal/vm/testdata),
// one machine at a time.
func TestVMBoot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	k := vmtest.DebianKernel(t)
	initrd := vmtest.Initramfs(t, vmtest.BuildStatic(t, "../vm/testdata/initmark"))
	for _, tc := range []struct {
		name, mode string
		extra      []string
		code       int
		reason     string
		stderr     string
	}{
		{"marker", "up", []string{"--marker", "^STRATA-MARK up$"}, exitOK, "marker", ""},
		{"power-off without marker", "up", nil, exitOK, "exited", ""},
		{"fatal", "fatal", []string{"--marker", "^STRATA-MARK up$"}, exitFailure, "failure", `cannot boot: the console showed "[initmark] FATAL: test failure requested"`},
		// 10 s: the kernel must have printed before the cut even on a busy machine (a 2 s
		// timeout sometimes cut it before its first line under TCG).
		{"timeout", "hang", []string{"--timeout", "10s"}, exitFailure, "timeout", "cannot boot: timed out after 10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serial := t.TempDir() + "/console.log"
			args := append([]string{"vm", "--kernel", k.Vmlinux, "--initrd", initrd, "--append",
				"console=ttyS0 panic=-1 strata.test=" + tc.mode, "--serial", serial, "--json"}, tc.extra...)
			out, errOut, code := cmtRun(t, nil, args...)
			var got vmJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil || code != tc.code {
				t.Fatalf("strata %s = exit %d, stdout %q, stderr %q; want exit %d and JSON", strings.Join(args, " "), code, out, errOut, tc.code)
			}
			// With --json the error is a JSON object on stderr.
			var msg string
			if tc.stderr != "" {
				var ej errorJSON
				if err := json.Unmarshal([]byte(errOut), &ej); err != nil {
					t.Fatalf("strata vm (%s) --json: stderr %q is not a JSON error: %v", tc.name, errOut, err)
				}
				msg = ej.Error.Message
			}
			if got.Reason != tc.reason || got.OK != (tc.code == exitOK) || !strings.Contains(msg, tc.stderr) {
				t.Errorf("strata vm (%s) = reason %q ok %v, error %q; want reason %q, error containing %q", tc.name, got.Reason, got.OK, msg, tc.reason, tc.stderr)
			}
			if console, err := os.ReadFile(serial); err != nil || !strings.Contains(string(console), "Linux version") {
				t.Errorf("--serial %s holds %d bytes (%v), want the kernel's log", serial, len(console), err)
			}
		})
	}
}
