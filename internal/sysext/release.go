package sysext

import (
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/osrelease"
)

// ReleaseDir is where an extension carries its identity, and ReleasePrefix
// the name of the file there without the extension's name
// (usr/lib/extension-release.d/extension-release.NAME).
const (
	ReleaseDir    = "usr/lib/extension-release.d"
	ReleasePrefix = "extension-release."
)

// ReleasePath returns the path inside an image of name's extension-release
// file, relative to the image's root.
func ReleasePath(name string) string { return ReleaseDir + "/" + ReleasePrefix + name }

// nameRe is what strata accepts as an extension name: systemd takes the
// image's file name minus ".raw", so the name must be a plain file name;
// strata keeps to the characters of a package name so that it is also a
// safe path element and URL segment. The lengths are checked apart: a bounded
// repetition ({0,127}) compiles into a copy of its class per count, which every
// strata command paid for at start (170 KB of heap).
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

const maxNameLen = 128

// levelRe is the form of VERSION_ID and SYSEXT_LEVEL values
// (os-release(5): lower-case letters, digits and ".", "_", "-"). strata
// also keys its per-version store by VERSION_ID, so the value must be a
// safe path element.
var levelRe = regexp.MustCompile(`^[0-9a-z][0-9a-z._-]*$`)

const maxLevelLen = 64

// CheckName refuses an extension name that is not a plain file name.
func CheckName(name string) error {
	if len(name) > maxNameLen || !nameRe.MatchString(name) || strings.HasSuffix(name, ".raw") {
		return fmt.Errorf("extension name %q: want letters, digits and . _ + - (at most 128, no .raw suffix): %w", name, errdefs.ErrInvalid)
	}
	return nil
}

// CheckVersion refuses a VERSION_ID or SYSEXT_LEVEL value outside
// os-release(5)'s alphabet.
func CheckVersion(key, v string) error {
	if len(v) > maxLevelLen || !levelRe.MatchString(v) {
		return fmt.Errorf("%s %q: want lower-case letters, digits and . _ -: %w", key, v, errdefs.ErrInvalid)
	}
	return nil
}

// Architecture returns the name systemd gives the architecture strata was
// built for, as ConditionArchitecture= and ARCHITECTURE= spell it
// (systemd's architecture table), or "" for one it does not know.
func Architecture() string { return archNames[runtime.GOARCH] }

// archNames maps GOARCH to systemd's architecture names.
var archNames = map[string]string{
	"amd64": "x86-64", "386": "x86", "arm64": "arm64", "arm": "arm",
	"riscv64": "riscv64", "s390x": "s390x", "ppc64le": "ppc64-le", "ppc64": "ppc64",
	"loong64": "loongarch64", "mips64le": "mips64-le", "mipsle": "mips-le",
}

// ErrMismatch is wrapped by Match's errors: the extension is well formed but
// not meant for this host. It is also errdefs.ErrFailedPrecondition.
var ErrMismatch = fmt.Errorf("extension does not match the host: %w", errdefs.ErrFailedPrecondition)

// Match decides whether systemd-sysext (252) merges an extension whose
// extension-release holds ext on a host whose os-release holds host and
// whose kernel architecture is arch, in the order and with the rules of
// systemd's extension_release_validate (docs/sysext.md, "Matching"):
//
//  1. SYSEXT_SCOPE (default "system portable") must list "system";
//  2. ARCHITECTURE, unless empty or "_any", must equal arch;
//  3. ID must be set, and be "_any" (matches, no version checks) or the
//     host's ID;
//  4. a host without VERSION_ID and SYSEXT_LEVEL matches (rolling release);
//  5. when both declare SYSEXT_LEVEL, the levels must be equal;
//  6. otherwise, when the host has a VERSION_ID, the extension's must be
//     set and equal.
//
// A mismatch is an error wrapping ErrMismatch that says which field
// differs; nil means systemd-sysext merges it.
func Match(ext, host osrelease.Values, arch string) error {
	mismatch := func(format string, a ...any) error {
		return fmt.Errorf(format+": %w", append(a, ErrMismatch)...)
	}
	scope := []string{"system", "portable"}
	if s := ext["SYSEXT_SCOPE"]; s != "" {
		scope = strings.Fields(s)
	}
	if !slices.Contains(scope, "system") {
		return mismatch("SYSEXT_SCOPE %q does not include system", ext["SYSEXT_SCOPE"])
	}
	if a := ext["ARCHITECTURE"]; a != "" && a != "_any" && a != arch {
		return mismatch("ARCHITECTURE %s, host is %s", a, arch)
	}
	id := ext["ID"]
	switch {
	case id == "":
		return mismatch("extension-release has no ID")
	case id == "_any":
		return nil
	case id != host["ID"]:
		return mismatch("ID %s, host is %s", id, host["ID"])
	}
	hostLevel, hostVersion := host["SYSEXT_LEVEL"], host["VERSION_ID"]
	if hostLevel == "" && hostVersion == "" {
		return nil
	}
	if l := ext["SYSEXT_LEVEL"]; hostLevel != "" && l != "" {
		if l != hostLevel {
			return mismatch("SYSEXT_LEVEL %s, host is %s", l, hostLevel)
		}
		return nil
	}
	if hostVersion != "" {
		v := ext["VERSION_ID"]
		if v == "" {
			return mismatch("extension-release has no VERSION_ID (host has VERSION_ID %s and no matching SYSEXT_LEVEL)", hostVersion)
		}
		if v != hostVersion {
			return mismatch("VERSION_ID %s, host is %s", v, hostVersion)
		}
	}
	return nil
}
