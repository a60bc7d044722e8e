package provconfig

import (
	"fmt"
	"reflect"
	"strings"

	t35 "github.com/coreos/ignition/v2/config/v3_5/types"
)

var nodeGroupType = reflect.TypeFor[t35.NodeGroup]()

// EscapePath escapes a path into a unit name component as `systemd-escape --path` does:
// the slashes at either end are dropped, the others become "-", and every byte outside
// [A-Za-z0-9:_.] (and a leading ".") becomes \xNN. The root is "-".
func EscapePath(p string) string {
	p = strings.Trim(p, "/")
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	if p == "" {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// MountUnit returns the name and contents of the unit that mounts a filesystem of
// storage.filesystems at its path on every boot (a .mount unit named after the path, or a
// .swap unit named after the device for format swap), wanted by local-fs.target (swap.target)
// and ordered after the device's fsck, as Butane's with_mount_unit writes it.
func MountUnit(device, format, path string, options []string) (name, contents string) {
	dev := EscapePath(device)
	var b strings.Builder
	if format == "swap" {
		fmt.Fprintf(&b, "[Unit]\nDescription=Swap on %s\n\n[Swap]\nWhat=%s\n", device, device)
		if len(options) > 0 {
			fmt.Fprintf(&b, "Options=%s\n", strings.Join(options, ","))
		}
		b.WriteString("\n[Install]\nRequiredBy=swap.target\n")
		return dev + ".swap", b.String()
	}
	fmt.Fprintf(&b, "[Unit]\nDescription=Mount %s on %s\nRequires=systemd-fsck@%s.service\nAfter=systemd-fsck@%s.service\n\n", device, path, dev, dev)
	fmt.Fprintf(&b, "[Mount]\nWhat=%s\nWhere=%s\nType=%s\n", device, path, format)
	if len(options) > 0 {
		fmt.Fprintf(&b, "Options=%s\n", strings.Join(options, ","))
	}
	b.WriteString("\n[Install]\nRequiredBy=local-fs.target\n")
	return EscapePath(path) + ".mount", b.String()
}
