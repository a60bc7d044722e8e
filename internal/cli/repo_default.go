package cli

import (
	"os"
	"path/filepath"
)

// bootedMarker is the file libostree's initramfs setup (and strata's
// prepare-root) leaves on a booted OSTree system.
const bootedMarker = "/run/ostree-booted"

// env is what the defaults below read from the environment: variables
// and whether this is a booted node.
type env struct {
	getenv func(string) string
	booted func() bool
}

func hostEnv() env {
	return env{getenv: os.Getenv, booted: func() bool {
		_, err := os.Stat(bootedMarker)
		return err == nil
	}}
}

// defaultSysroot is the sysroot the node verbs act on without --sysroot:
// $OSTREE_SYSROOT, as ostree admin reads it, else "/".
func (e env) defaultSysroot() string {
	if s := e.getenv("OSTREE_SYSROOT"); s != "" {
		return s
	}
	return "/"
}

// defaultRepo is the repository the repo verbs act on without --repo, as
// ostree chooses it: $OSTREE_REPO, else the repository of the sysroot the
// node verbs act on (so that `strata repo log` and `strata status` read
// the same one) when there is one: on a booted node, or where
// $OSTREE_SYSROOT names it.
func (e env) defaultRepo() (string, error) {
	if r := e.getenv("OSTREE_REPO"); r != "" {
		return r, nil
	}
	if e.getenv("OSTREE_SYSROOT") != "" || e.booted() {
		return filepath.Join(e.defaultSysroot(), "ostree/repo"), nil
	}
	return "", usagef("no repository given: use --repo R, or set OSTREE_REPO (on a booted node the default is /ostree/repo)")
}

// repoPath returns the repository path of a repo command: --repo if
// given, else the default.
func repoPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return hostEnv().defaultRepo()
}
