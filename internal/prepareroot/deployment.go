package prepareroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// Deployment is a deployment found on a mounted physical root.
type Deployment struct {
	Stateroot string // e.g. "os"
	Name      string // CSUM.SERIAL, e.g. "0f3c….0"
	Dir       string // host path of the deployment directory
	Var       string // host path of the stateroot's shared var
}

// deployName is the basename ostree gives deployment directories
// (docs/formats/sysroot.md: ^([0-9a-f]+)\.([0-9]+)$).
var deployName = regexp.MustCompile(`^[0-9a-f]+\.[0-9]+$`)

// maxSymlinks bounds the symlinks followed while resolving one path, as the
// kernel's MAXSYMLINKS does.
const maxSymlinks = 40

// ResolveDeployment resolves the ostree= argument against the physical root
// mounted at sysroot. The argument is the boot symlink
// /ostree/boot.N/OS/BOOTCSUM/SERIAL or a deployment path
// /ostree/deploy/OS/deploy/CSUM.SERIAL. Symlinks are followed as if sysroot
// were the root directory (absolute targets and ".." stay inside it), and the
// result must be a directory sysroot/ostree/deploy/<stateroot>/deploy/<CSUM.SERIAL>
// whose stateroot has a var directory; anything else is an error.
func ResolveDeployment(sysroot, arg string) (Deployment, error) {
	if !strings.HasPrefix(arg, "/") {
		return Deployment{}, fmt.Errorf("ostree=%q: want an absolute path: %w", arg, errdefs.ErrInvalid)
	}
	for _, c := range strings.Split(arg, "/") {
		if c == ".." {
			return Deployment{}, fmt.Errorf("ostree=%q: \"..\" is not allowed: %w", arg, errdefs.ErrInvalid)
		}
	}
	rel, err := resolveIn(sysroot, arg)
	if err != nil {
		return Deployment{}, fmt.Errorf("resolving ostree=%s: %w", arg, err)
	}
	// rel is clean and absolute: /ostree/deploy/<stateroot>/deploy/<name>.
	parts := strings.Split(strings.TrimPrefix(rel, "/"), "/")
	if len(parts) != 5 || parts[0] != "ostree" || parts[1] != "deploy" || parts[3] != "deploy" ||
		parts[2] == "" || !deployName.MatchString(parts[4]) {
		return Deployment{}, fmt.Errorf("ostree=%s resolves to %s, not a deployment /ostree/deploy/STATEROOT/deploy/CSUM.SERIAL: %w",
			arg, rel, errdefs.ErrInvalid)
	}
	d := Deployment{
		Stateroot: parts[2],
		Name:      parts[4],
		Dir:       filepath.Join(sysroot, rel),
		Var:       filepath.Join(sysroot, "ostree", "deploy", parts[2], "var"),
	}
	if err := isDir(d.Dir); err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", rel, err)
	}
	if err := isDir(d.Var); err != nil {
		return Deployment{}, fmt.Errorf("stateroot %s: var: %w", d.Stateroot, err)
	}
	return d, nil
}

// isDir checks that p is a directory and not a symlink.
func isDir(p string) error {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist: %w", p, errdefs.ErrNotFound)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory: %w", p, errdefs.ErrInvalid)
	}
	return nil
}

// resolveIn resolves p inside root with chroot semantics and returns the
// resulting clean absolute path relative to root. Every component must exist.
func resolveIn(root, p string) (string, error) {
	todo := strings.Split(p, "/") // components still to walk, in order
	cur := "/"                    // resolved so far, relative to root
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur) // path.Dir("/") is "/": ".." cannot leave root
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s does not exist: %w", next, errdefs.ErrNotFound)
		} else if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(todo) > 0 && !fi.IsDir() {
				return "", fmt.Errorf("%s is not a directory: %w", next, errdefs.ErrInvalid)
			}
			cur = next
			continue
		}
		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("too many levels of symbolic links at %s: %w", next, errdefs.ErrInvalid)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}
