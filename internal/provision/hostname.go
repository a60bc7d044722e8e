package provision

import "strings"

// maxHostname is the kernel's limit on a host name (HOST_NAME_MAX).
const maxHostname = 64

// validHostname reports whether name can be a host name: at most 64 characters, labels of ASCII
// letters, digits and hyphens separated by single dots, no label starting or ending with a
// hyphen. A name from a DHCP server is not trusted to be one.
func validHostname(name string) bool {
	if name == "" || len(name) > maxHostname {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// defaultHostname writes name to /etc/hostname in the tree at deployRoot (root:root, 0644)
// unless the tree has that path already, as anything, or name is not a valid host name.
// written says whether it did.
func defaultHostname(deployRoot, name string) (written bool, err error) {
	if !validHostname(name) {
		return false, nil
	}
	r, err := openRoot(deployRoot)
	if err != nil {
		return false, err
	}
	defer r.Close()
	if _, ok, err := r.lstat("etc/hostname"); err != nil || ok {
		return false, err
	}
	if err := r.writeFile("etc/hostname", []byte(name+"\n"), 0o644, 0, 0); err != nil {
		return false, err
	}
	return true, nil
}
