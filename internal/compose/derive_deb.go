package compose

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// debMagic starts every .deb: an ar archive whose first member is
// debian-binary (deb(5)).
const debMagic = "!<arch>\ndebian-binary"

// CheckDeb reads a local .deb file: it must be an ar archive whose first
// member is debian-binary, and `dpkg-deb --field` must read its package
// name, version and architecture. Anything else is errdefs.ErrInvalid,
// checked before the file goes anywhere near a tree.
func CheckDeb(path string) (LocalDeb, error) {
	d := LocalDeb{Path: path}
	f, err := os.Open(path)
	if err != nil {
		return d, fmt.Errorf("reading package %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(debMagic))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != debMagic {
		return d, fmt.Errorf("%s is not a Debian package (.deb): %w", path, errdefs.ErrInvalid)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return d, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return d, fmt.Errorf("reading package %s: %w", path, err)
	}
	d.SHA256 = hex.EncodeToString(h.Sum(nil))
	var stderr bytes.Buffer
	cmd := exec.Command("dpkg-deb", "--field", path, "Package", "Version", "Architecture")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return d, fmt.Errorf("%s is not a Debian package (.deb): dpkg-deb: %w: %s: %w", path, err, strings.TrimSpace(stderr.String()), errdefs.ErrInvalid)
	}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			d.Package = v
		case "Version":
			d.Version = v
		case "Architecture":
			d.Architecture = v
		}
	}
	if !packageName.MatchString(d.Package) || d.Version == "" || d.Architecture == "" ||
		strings.ContainsAny(d.Version+d.Architecture, "; \t\n\\_") {
		return d, fmt.Errorf("%s: package %q version %q architecture %q: not a valid control file: %w",
			path, d.Package, d.Version, d.Architecture, errdefs.ErrInvalid)
	}
	return d, nil
}
