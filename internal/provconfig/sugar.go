package provconfig

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/vincent-petithory/dataurl"
	"go.yaml.in/yaml/v3"
)

// sugar expands the YAML form's sugar keys left in the translated tree by object().
func (t *translator) sugar(top map[string]any) {
	var mounts []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, k := range sortedKeys(x) {
				if _, ok := x[k].(sugarValue); !ok {
					walk(x[k])
				}
			}
			t.expand(x, top, &mounts)
		}
	}
	walk(top)
	for _, fsys := range mounts {
		name, contents := MountUnit(str(fsys["device"]), str(fsys["format"]), str(fsys["path"]), strs(fsys["mountOptions"]))
		units := ensureList(ensureMap(top, "systemd"), "units")
		units = append(units, map[string]any{"name": name, "enabled": true, "contents": contents})
		top["systemd"].(map[string]any)["units"] = units
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func str(v any) string { s, _ := v.(string); return s }

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, str(e))
	}
	return out
}

func ensureMap(m map[string]any, key string) map[string]any {
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

func ensureList(m map[string]any, key string) []any {
	l, _ := m[key].([]any)
	return l
}

// expand replaces the sugar keys of one object.
func (t *translator) expand(m map[string]any, top map[string]any, mounts *[]map[string]any) {
	inline, hasInline := m["inline"].(sugarValue)
	local, hasLocal := m["local"].(sugarValue)
	delete(m, "inline")
	delete(m, "local")
	if hasInline || hasLocal {
		n := 0
		for _, has := range []bool{hasInline, hasLocal, m["source"] != nil} {
			if has {
				n++
			}
		}
		sv := inline
		if hasLocal {
			sv = local
		}
		if n > 1 {
			t.errorf(sv.node, sv.path, "a resource takes only one of source, inline and local")
			return
		}
		var data []byte
		if hasInline {
			s, ok := t.scalarString(inline)
			if !ok {
				return
			}
			data = []byte(s)
		} else {
			name, ok := t.scalarString(local)
			if !ok {
				return
			}
			if data, ok = t.readLocal(local, name); !ok {
				return
			}
		}
		comp, userSet := m["compression"].(string)
		userSet = userSet && comp != ""
		uri, compression := dataURL(data, sv.compressible && !userSet)
		m["source"] = uri
		if sv.compressible && !userSet {
			m["compression"] = compression
		}
	}
	if sv, ok := m["contents_local"].(sugarValue); ok {
		delete(m, "contents_local")
		if m["contents"] != nil {
			t.errorf(sv.node, sv.path, "contents and contents_local are exclusive")
		} else if name, ok := t.scalarString(sv); ok {
			if data, ok := t.readLocal(sv, name); ok {
				m["contents"] = string(data)
			}
		}
	}
	if sv, ok := m["ssh_authorized_keys_local"].(sugarValue); ok {
		delete(m, "ssh_authorized_keys_local")
		t.localKeys(m, sv)
	}
	if sv, ok := m["with_mount_unit"].(sugarValue); ok {
		delete(m, "with_mount_unit")
		var on bool
		if sv.node.Kind != yaml.ScalarNode || sv.node.Tag != "!!bool" || sv.node.Decode(&on) != nil {
			t.errorf(sv.node, sv.path, "want true or false, found %s", kindName(sv.node))
		} else if on {
			if str(m["path"]) == "" && str(m["format"]) != "swap" {
				t.errorf(sv.node, sv.path, "with_mount_unit needs path")
			} else {
				*mounts = append(*mounts, m)
			}
		}
	}
	if sv, ok := m["trees"].(sugarValue); ok {
		delete(m, "trees")
		t.trees(m, sv)
	}
}

func (t *translator) scalarString(sv sugarValue) (string, bool) {
	if sv.node.Kind != yaml.ScalarNode || sv.node.Tag != "!!str" {
		t.errorf(sv.node, sv.path, "want a string, found %s", kindName(sv.node))
		return "", false
	}
	return sv.node.Value, true
}

// readLocal reads a file of the files directory, by a slash-separated path inside it.
func (t *translator) readLocal(sv sugarValue, name string) ([]byte, bool) {
	if t.opts.Files == nil {
		t.errorf(sv.node, sv.path, "local file %q needs a files directory (--files-dir)", name)
		return nil, false
	}
	clean := path.Clean(name)
	if !fs.ValidPath(clean) || clean == "." {
		t.errorf(sv.node, sv.path, "local file %q must be a relative path inside the files directory", name)
		return nil, false
	}
	st, err := fs.Stat(t.opts.Files, clean)
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file")
	} else if err == nil && st.Size() > maxLocal {
		err = fmt.Errorf("%d bytes, more than the %d accepted", st.Size(), maxLocal)
	}
	var data []byte
	if err == nil {
		data, err = fs.ReadFile(t.opts.Files, clean)
	}
	if err != nil {
		t.errorf(sv.node, sv.path, "reading local file %q: %v", name, err)
		return nil, false
	}
	return data, true
}

// localKeys appends the keys of ssh_authorized_keys_local files, one per non-empty line.
func (t *translator) localKeys(user map[string]any, sv sugarValue) {
	if sv.node.Kind != yaml.SequenceNode {
		t.errorf(sv.node, sv.path, "want a list, found %s", kindName(sv.node))
		return
	}
	keys := ensureList(user, "sshAuthorizedKeys")
	for i, e := range sv.node.Content {
		esv := sugarValue{node: resolve(e), path: append(slices.Clip(sv.path), i)}
		name, ok := t.scalarString(esv)
		if !ok {
			continue
		}
		data, ok := t.readLocal(esv, name)
		if !ok {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
	}
	if len(keys) > 0 {
		user["sshAuthorizedKeys"] = keys
	}
}

// dataURL encodes contents the way Butane does: the shortest of a percent-escaped data URL, a
// base64 one and, when compression is allowed, a gzip+base64 one (counted with the 4 bytes
// that "gzip" costs). compression is what the resource's compression field must say: "" is
// written out explicitly so that a config merged over this one cannot make it inherit gzip.
func dataURL(data []byte, allowCompression bool) (uri, compression string) {
	uri = "data:," + dataurl.EscapeString(string(data))
	if b64 := "data:;base64," + base64.StdEncoding.EncodeToString(data); len(b64) < len(uri) {
		uri = b64
	}
	if allowCompression {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		w.Write(data)
		w.Close()
		if gz := "data:;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()); len(gz)+len("gzip") < len(uri) {
			return gz, "gzip"
		}
	}
	return uri, ""
}
