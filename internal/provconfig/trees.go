package provconfig

import (
	"fmt"
	"io/fs"
	"path"
	"slices"

	"go.yaml.in/yaml/v3"
)

// tree is one storage.trees entry.
type tree struct {
	local, dest       string
	fileMode, dirMode *int64
	user, group       map[string]any
}

// trees expands storage.trees: every regular file under local becomes a files entry with a
// data URL, every symlink a links entry and, when dir_mode, user or group is given, every
// directory a directories entry. Without file_mode a file gets 0755 if its owner may execute
// it, else 0644 (as Butane). An explicit files, directories or links entry with the same path
// keeps its own attributes and gets only the contents or target from the tree.
func (t *translator) trees(storage map[string]any, sv sugarValue) {
	if sv.node.Kind != yaml.SequenceNode {
		t.errorf(sv.node, sv.path, "want a list, found %s", kindName(sv.node))
		return
	}
	for i, e := range sv.node.Content {
		p := append(slices.Clip(sv.path), i)
		tr, ok := t.parseTree(resolve(e), p)
		if !ok {
			continue
		}
		t.walkTree(storage, tr, resolve(e), p)
	}
}

func (t *translator) parseTree(n *yaml.Node, p []any) (tree, bool) {
	tr := tree{dest: "/"}
	if n.Kind != yaml.MappingNode {
		t.errorf(n, p, "want a mapping, found %s", kindName(n))
		return tr, false
	}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		kp := append(slices.Clip(p), k.Value)
		switch k.Value {
		case "local", "path":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
				t.errorf(v, kp, "want a string, found %s", kindName(v))
				ok = false
			} else if k.Value == "local" {
				tr.local = v.Value
			} else {
				tr.dest = v.Value
			}
		case "file_mode", "dir_mode":
			var m int64
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&m) != nil {
				t.errorf(v, kp, "want an integer, found %s", kindName(v))
				ok = false
			} else if k.Value == "file_mode" {
				tr.fileMode = &m
			} else {
				tr.dirMode = &m
			}
		case "user", "group":
			o := t.object(v, nodeGroupType, kp)
			if k.Value == "user" {
				tr.user = o
			} else {
				tr.group = o
			}
		default:
			t.errorf(k, kp, "unknown key %s", k.Value)
			ok = false
		}
	}
	if tr.local == "" {
		t.errorf(n, p, "missing key local")
		ok = false
	}
	return tr, ok
}

func (t *translator) walkTree(storage map[string]any, tr tree, n *yaml.Node, p []any) {
	if t.opts.Files == nil {
		t.errorf(n, p, "local tree %q needs a files directory (--files-dir)", tr.local)
		return
	}
	root := path.Clean(tr.local)
	if !fs.ValidPath(root) {
		t.errorf(n, p, "local tree %q must be a relative path inside the files directory", tr.local)
		return
	}
	rl, ok := t.opts.Files.(fs.ReadLinkFS)
	index := pathIndex(storage)
	err := fs.WalkDir(t.opts.Files, root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := name[len(root):]
		if root == "." {
			rel = "/" + name
		}
		dest := path.Join(tr.dest, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		entry := map[string]any{"path": dest}
		if tr.user != nil {
			entry["user"] = tr.user
		}
		if tr.group != nil {
			entry["group"] = tr.group
		}
		switch {
		case d.IsDir():
			if name == root || (tr.dirMode == nil && tr.user == nil && tr.group == nil) {
				return nil
			}
			mode := int64(0o755)
			if tr.dirMode != nil {
				mode = *tr.dirMode
			}
			entry["mode"] = mode
			t.addEntry(storage, index, "directories", entry, nil, n, p)
		case info.Mode()&fs.ModeSymlink != 0:
			if !ok {
				return fmt.Errorf("%s: the files directory cannot read symlinks", name)
			}
			target, err := rl.ReadLink(name)
			if err != nil {
				return err
			}
			entry["target"] = target
			t.addEntry(storage, index, "links", entry, []string{"target"}, n, p)
		case info.Mode().IsRegular():
			if info.Size() > maxLocal {
				return fmt.Errorf("%s: %d bytes, more than the %d accepted", name, info.Size(), maxLocal)
			}
			data, err := fs.ReadFile(t.opts.Files, name)
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if tr.fileMode != nil {
				mode = *tr.fileMode
			} else if info.Mode()&0o100 != 0 {
				mode = 0o755
			}
			uri, comp := dataURL(data, true)
			entry["mode"] = mode
			entry["contents"] = map[string]any{"source": uri, "compression": comp}
			t.addEntry(storage, index, "files", entry, []string{"contents"}, n, p)
		default:
			return fmt.Errorf("%s: %s is neither a file, a directory nor a symlink", name, info.Mode().Type())
		}
		return nil
	})
	if err != nil {
		t.errorf(n, p, "reading local tree %q: %v", tr.local, err)
	}
}

// pathIndex maps the paths of the explicit files, directories and links to their entries.
func pathIndex(storage map[string]any) map[string]map[string]any {
	idx := map[string]map[string]any{}
	for _, kind := range []string{"files", "directories", "links"} {
		for _, e := range ensureList(storage, kind) {
			if m, ok := e.(map[string]any); ok {
				idx[path.Clean(str(m["path"]))] = m
			}
		}
	}
	return idx
}

// addEntry appends a generated entry, or fills the given keys of an explicit entry of the same
// path (which must not set them itself).
func (t *translator) addEntry(storage map[string]any, idx map[string]map[string]any, kind string, entry map[string]any, fill []string, n *yaml.Node, p []any) {
	dest := str(entry["path"])
	if explicit, ok := idx[dest]; ok {
		for _, k := range fill {
			if explicit[k] != nil {
				t.errorf(n, p, "%s comes from a tree and from an explicit entry that sets %s", dest, k)
				return
			}
			explicit[k] = entry[k]
		}
		return
	}
	l := ensureList(storage, kind)
	t.nodes[jsonPath([]any{"storage", kind, len(l)})] = n
	storage[kind] = append(l, entry)
	idx[dest] = entry
}
