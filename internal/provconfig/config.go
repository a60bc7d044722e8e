package provconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	ignerrors "github.com/coreos/ignition/v2/config/shared/errors"
	"github.com/coreos/ignition/v2/config/util"
	v3_5 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/strata-os/strata/internal/errdefs"
)

// Config is a parsed config, translated to Ignition spec 3.5.0 whatever version it was written in.
type Config = types.Config

// MaxVersion is the newest Ignition spec version accepted.
const MaxVersion = "3.5.0"

// Options carry what translating the YAML form needs besides the YAML.
type Options struct {
	// Files is the directory that contents.local, contents_local, ssh_authorized_keys_local
	// and storage.trees[].local are relative to (strata config translate --files-dir). Nil
	// makes every local reference an error.
	Files fs.FS
}

// Parse parses a config in either form: an Ignition JSON config (3.0.0 to 3.5.0) or the YAML
// form, which is translated first. The report holds every finding; err is non-nil when the
// config cannot be used, and wraps errdefs.ErrInvalid or errdefs.ErrUnsupported.
func Parse(raw []byte, opts Options) (Config, Report, error) {
	if !IsJSON(raw) {
		js, rpt, err := Translate(raw, opts)
		if err != nil {
			return Config{}, rpt, err
		}
		cfg, jrpt, err := ParseJSON(js)
		rpt.Findings = append(rpt.Findings, jrpt.Findings...)
		return cfg, rpt, err
	}
	return ParseJSON(raw)
}

// IsJSON reports whether raw is in the JSON form: its first non-blank byte opens an object.
// Everything else is taken for the YAML form.
func IsJSON(raw []byte) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// ParseJSON parses and validates an Ignition config of spec 3.0.0 to 3.5.0 and translates it
// to 3.5.0.
func ParseJSON(raw []byte) (Config, Report, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		var r Report
		r.add(SeverityError, nil, 0, 0, "config is empty")
		return Config{}, r, fmt.Errorf("parsing config: empty: %w", errdefs.ErrInvalid)
	}
	cfg, irpt, err := v3_5.ParseCompatibleVersion(raw)
	rpt := fromIgnition(irpt, nil)
	switch {
	case err == nil:
		return cfg, rpt, nil
	case errors.Is(err, ignerrors.ErrUnknownVersion), errors.Is(err, ignerrors.ErrInvalidVersion):
		v, _, _ := util.GetConfigVersion(raw)
		rpt.add(SeverityError, []any{"ignition", "version"}, 0, 0,
			"unsupported config version %q: strata accepts Ignition spec 3.0.0 to %s", v.String(), MaxVersion)
		return Config{}, rpt, fmt.Errorf("parsing config: version %s: %w", v.String(), errdefs.ErrUnsupported)
	default:
		if len(rpt.Findings) == 0 {
			rpt.add(SeverityError, nil, 0, 0, "%v", err)
		}
		return Config{}, rpt, fmt.Errorf("parsing config: %v: %w", err, errdefs.ErrInvalid)
	}
}

// Digest returns the config's identity as recorded by provisioning: "sha256-" and the hex
// SHA-256 of its bytes as given.
func Digest(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "sha256-" + hex.EncodeToString(sum[:])
}
