package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// AppID is Zincati's application id: the node id is the machine id made app-specific with it, so a
// node keeps its id (and its place in rollouts and lock records) when it moves between Zincati and
// strata's agent.
const AppID = "de35106b6ec24688b63afddaa156679b"

// ParseID parses a 128-bit id written as 32 hex digits (a machine id, an app id).
func ParseID(s string) ([16]byte, error) {
	var id [16]byte
	s = strings.TrimSpace(s)
	if len(s) != 32 {
		return id, fmt.Errorf("id %q is not 32 hex digits: %w", s, errdefs.ErrInvalid)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("id %q is not 32 hex digits: %w", s, errdefs.ErrInvalid)
	}
	return id, nil
}

// AppSpecificID derives an application-specific id from a machine id as systemd's
// sd_id128_get_machine_app_specific does: HMAC-SHA256 keyed by the machine id over the app id,
// truncated to 128 bits and stamped as a version 4, variant 1 UUID. The machine id cannot be
// recovered from the result.
func AppSpecificID(machineID, appID [16]byte) [16]byte {
	mac := hmac.New(sha256.New, machineID[:])
	mac.Write(appID[:])
	var id [16]byte
	copy(id[:], mac.Sum(nil))
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// NodeID returns the node's id: the configured identity.node_uuid, else the app-specific id of
// root's /etc/machine-id.
func NodeID(root string, cfg Config) (string, error) {
	if cfg.Identity.NodeUUID != "" {
		id, err := ParseID(cfg.Identity.NodeUUID)
		if err != nil {
			return "", err
		}
		return hex.EncodeToString(id[:]), nil
	}
	data, err := os.ReadFile(filepath.Join(root, "etc/machine-id"))
	if err != nil {
		return "", fmt.Errorf("reading the machine id: %w", err)
	}
	mid, err := ParseID(string(data))
	if err != nil {
		return "", fmt.Errorf("/etc/machine-id: %w", err)
	}
	app, _ := ParseID(AppID)
	id := AppSpecificID(mid, app)
	return hex.EncodeToString(id[:]), nil
}
