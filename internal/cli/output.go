package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// writeJSON prints v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progress is a bar on the command's stderr when it is a terminal, and
// nothing otherwise.
type progress struct{ bar *progressbar.ProgressBar }

// newProgress starts a progress bar; total < 0 means unknown. unit "bytes"
// shows byte counts and rates.
func newProgress(cmd *cobra.Command, desc string, total int64, bytes bool) *progress {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString("objects"))
	}
	return &progress{bar: progressbar.NewOptions64(total, opts...)}
}

// Add advances the bar by n.
func (p *progress) Add(n int64) {
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

// SetTotal changes the bar's total once it is known.
func (p *progress) SetTotal(n int64) {
	if p.bar != nil {
		p.bar.ChangeMax64(n)
	}
}

// Finish removes the bar.
func (p *progress) Finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// isTerminal reports whether w is a terminal (shared by the commands that
// stream output only to a person).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// absPath returns p made absolute, for the paths of --json outputs.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
