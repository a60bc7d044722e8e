package provconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"

	t30 "github.com/coreos/ignition/v2/config/v3_0/types"
	t31 "github.com/coreos/ignition/v2/config/v3_1/types"
	t32 "github.com/coreos/ignition/v2/config/v3_2/types"
	t33 "github.com/coreos/ignition/v2/config/v3_3/types"
	t34 "github.com/coreos/ignition/v2/config/v3_4/types"
	t35 "github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/strata-os/strata/internal/errdefs"
	"go.yaml.in/yaml/v3"
)

// Variant is the only YAML variant accepted, Butane's Fedora CoreOS one.
const Variant = "fcos"

// fcosVersions maps Butane's fcos variant versions to the Ignition spec each one produces and
// the Go types of that spec, whose JSON field names are the schema of the YAML form. fcos 1.3.0
// added only sugar and still produces 3.2.0, as Butane does (docs/provisioning.md).
var fcosVersions = map[string]struct {
	ignition string
	schema   reflect.Type
}{
	"1.0.0": {"3.0.0", reflect.TypeFor[t30.Config]()},
	"1.1.0": {"3.1.0", reflect.TypeFor[t31.Config]()},
	"1.2.0": {"3.2.0", reflect.TypeFor[t32.Config]()},
	"1.3.0": {"3.2.0", reflect.TypeFor[t32.Config]()},
	"1.4.0": {"3.3.0", reflect.TypeFor[t33.Config]()},
	"1.5.0": {"3.4.0", reflect.TypeFor[t34.Config]()},
	"1.6.0": {"3.5.0", reflect.TypeFor[t35.Config]()},
}

// maxInput bounds the YAML accepted, and maxLocal each local file read for it.
const (
	maxInput = 16 << 20
	maxLocal = 64 << 20
)

// Translate turns the YAML form into an Ignition JSON config of the spec version its fcos
// version maps to. Keys are Ignition's field names in snake_case (ssh_authorized_keys), plus
// Butane's sugar: variant and version at the top, contents.inline and contents.local,
// contents_local for units and dropins, ssh_authorized_keys_local, storage.trees and
// storage.filesystems[].with_mount_unit. Every unknown key, wrong type or duplicate key is an
// error finding with its line and column. The output is then checked by Ignition's validator,
// whose findings are mapped back to the YAML's lines.
func Translate(raw []byte, opts Options) ([]byte, Report, error) {
	t := &translator{opts: opts, nodes: map[string]*yaml.Node{}}
	if len(raw) > maxInput {
		t.rpt.add(SeverityError, nil, 0, 0, "config is %d bytes, more than the %d accepted", len(raw), maxInput)
		return nil, t.rpt, fmt.Errorf("translating config: too large: %w", errdefs.ErrInvalid)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.rpt.add(SeverityError, nil, 0, 0, "%v", err)
		return nil, t.rpt, fmt.Errorf("translating config: %w", errdefs.ErrInvalid)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		t.rpt.add(SeverityError, nil, 0, 0, "config is empty")
		return nil, t.rpt, fmt.Errorf("translating config: empty: %w", errdefs.ErrInvalid)
	}
	top := resolve(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		t.errorf(top, nil, "config must be a mapping, not %s", kindName(top))
		return nil, t.rpt, fmt.Errorf("translating config: %w", errdefs.ErrInvalid)
	}
	variant, version := t.header(top)
	if t.rpt.IsFatal() {
		return nil, t.rpt, fmt.Errorf("translating config: %w", errdefs.ErrUnsupported)
	}
	_ = variant
	spec := fcosVersions[version]
	out := t.object(top, spec.schema, nil, "variant", "version")
	if out == nil {
		out = map[string]any{}
	}
	ign, _ := out["ignition"].(map[string]any)
	if ign == nil {
		ign = map[string]any{}
		out["ignition"] = ign
	}
	ign["version"] = spec.ignition
	t.sugar(out)
	if t.rpt.IsFatal() {
		return nil, t.rpt, fmt.Errorf("translating config: %w", errdefs.ErrInvalid)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, t.rpt, fmt.Errorf("internal error: encoding translated config: %w", err)
	}
	// Ignition's own validation, with its findings moved onto the YAML's positions.
	_, irpt, err := ParseJSON(buf.Bytes())
	for _, f := range irpt.Findings {
		if n := t.locate(f.Path); n != nil {
			f.Line, f.Column = n.Line, n.Column
		} else {
			f.Line, f.Column = 0, 0
		}
		t.rpt.Findings = append(t.rpt.Findings, f)
	}
	if err != nil {
		return nil, t.rpt, fmt.Errorf("translating config: %w", err)
	}
	return buf.Bytes(), t.rpt, nil
}

type translator struct {
	opts Options
	rpt  Report
	// nodes maps the JSON path of every value written ("$.storage.files.0.path") to the YAML
	// node it came from, so that Ignition's findings can name YAML lines.
	nodes map[string]*yaml.Node
	// visited counts the values translated, depth the nesting, both bounded so that aliases
	// cannot expand a small input into a huge or endless tree.
	visited, depth int
}

const (
	maxValues = 1 << 20
	maxDepth  = 64
)

func (t *translator) errorf(n *yaml.Node, path []any, format string, args ...any) {
	t.rpt.add(SeverityError, path, n.Line, n.Column, format, args...)
}

// locate finds the node of a JSON path or of its nearest recorded parent.
func (t *translator) locate(p string) *yaml.Node {
	for {
		if n, ok := t.nodes[p]; ok {
			return n
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return nil
		}
		p = p[:i]
	}
}

// header checks variant and version.
func (t *translator) header(top *yaml.Node) (variant, version string) {
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], resolve(top.Content[i+1])
		switch k.Value {
		case "variant":
			variant = v.Value
			if v.Kind != yaml.ScalarNode || v.Value != Variant {
				t.errorf(v, []any{"variant"}, "unsupported variant %q: strata accepts %q", v.Value, Variant)
			}
		case "version":
			version = v.Value
			if _, ok := fcosVersions[v.Value]; !ok || v.Kind != yaml.ScalarNode {
				t.errorf(v, []any{"version"}, "unsupported %s version %q: strata accepts 1.0.0 to 1.6.0", Variant, v.Value)
			}
		}
	}
	if variant == "" {
		t.errorf(top, []any{"variant"}, "missing key variant (variant: %s)", Variant)
	}
	if version == "" {
		t.errorf(top, []any{"version"}, "missing key version (e.g. version: 1.6.0)")
	}
	return variant, version
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	}
	return "an empty value"
}

// field is one JSON field of an Ignition type.
type field struct {
	json string
	typ  reflect.Type
}

// fields lists the JSON fields of a struct type, embedded structs flattened, keyed by the
// snake_case name the YAML form uses.
func fields(typ reflect.Type) map[string]field {
	m := map[string]field{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range fields(f.Type) {
				m[k] = v
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[snake(name)] = field{json: name, typ: f.Type}
	}
	return m
}

// snake turns Ignition's JSON names into Butane's keys: sshAuthorizedKeys ->
// ssh_authorized_keys, sizeMiB -> size_mib.
func snake(s string) string {
	s = strings.ReplaceAll(s, "MiB", "Mib")
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sugarKeys are the keys the YAML form adds to some Ignition types, by the JSON field that
// marks the type.
func sugarKeys(typ reflect.Type, fs map[string]field) []string {
	var keys []string
	if _, ok := fs["source"]; ok {
		keys = append(keys, "inline", "local")
	}
	if typ.Name() == "Unit" || typ.Name() == "Dropin" {
		keys = append(keys, "contents_local")
	}
	if typ.Name() == "PasswdUser" {
		keys = append(keys, "ssh_authorized_keys_local")
	}
	if typ.Name() == "Storage" {
		keys = append(keys, "trees")
	}
	if typ.Name() == "Filesystem" {
		keys = append(keys, "with_mount_unit")
	}
	return keys
}

// object translates a mapping into a JSON object of the struct type typ. Sugar keys are kept
// under their YAML names for sugar() to expand. skip lists keys handled elsewhere.
func (t *translator) object(n *yaml.Node, typ reflect.Type, path []any, skip ...string) map[string]any {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		t.errorf(n, path, "want a mapping, found %s", kindName(n))
		return nil
	}
	fs := fields(typ)
	sugar := sugarKeys(typ, fs)
	out := map[string]any{}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			t.errorf(k, path, "keys must be scalars")
			continue
		}
		if seen[k.Value] {
			t.errorf(k, append(path, k.Value), "duplicate key %s", k.Value)
			continue
		}
		seen[k.Value] = true
		if slices.Contains(skip, k.Value) {
			continue
		}
		if f, ok := fs[k.Value]; ok && !(typ.Name() == "Ignition" && f.json == "version") {
			p := append(slices.Clip(path), f.json)
			t.nodes[jsonPath(p)] = resolve(v)
			if val := t.value(v, f.typ, p); val != nil {
				out[f.json] = val
			}
			continue
		}
		if slices.Contains(sugar, k.Value) {
			p := append(slices.Clip(path), k.Value)
			t.nodes[jsonPath(p)] = resolve(v)
			_, compressible := fs["compression"]
			out[k.Value] = sugarValue{node: resolve(v), path: p, compressible: compressible}
			continue
		}
		msg := fmt.Sprintf("unknown key %s", k.Value)
		if typ.Name() == "Ignition" && k.Value == "version" {
			msg = "unknown key version under ignition: the top-level version key chooses the Ignition spec"
		} else if hint := nearest(k.Value, fs); hint != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", hint)
		}
		t.errorf(k, append(slices.Clip(path), k.Value), "%s", msg)
	}
	return out
}

// nearest suggests the key a misspelt one was probably meant to be: the same letters without
// case and underscores (camelCase from a JSON config).
func nearest(key string, fs map[string]field) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	for k := range fs {
		if norm(k) == norm(key) {
			return k
		}
	}
	return ""
}

// sugarValue is a sugar key's node, expanded by sugar() once the whole tree is read.
type sugarValue struct {
	node *yaml.Node
	path []any
	// compressible says whether the resource has a compression field (inline and local).
	compressible bool
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// value translates one node into the JSON value of type typ.
func (t *translator) value(n *yaml.Node, typ reflect.Type, path []any) any {
	n = resolve(n)
	t.visited++
	t.depth++
	defer func() { t.depth-- }()
	if t.visited > maxValues || t.depth > maxDepth {
		if t.visited == maxValues+1 || t.depth == maxDepth+1 {
			t.errorf(n, path, "config is nested too deep or expands to too many values (aliases?)")
		}
		return nil
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if isNull(n) {
		return nil
	}
	switch typ.Kind() {
	case reflect.Struct:
		if o := t.object(n, typ, path); o != nil {
			return o
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			t.errorf(n, path, "want a list, found %s", kindName(n))
			return nil
		}
		out := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			if t.visited > maxValues {
				break
			}
			p := append(slices.Clip(path), i)
			t.nodes[jsonPath(p)] = resolve(e)
			v := t.value(e, typ.Elem(), p)
			if v == nil {
				t.errorf(e, p, "list entries must not be empty")
				continue
			}
			out = append(out, v)
		}
		return out
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			t.errorf(n, path, "want a string, found %s (quote it)", kindName(n))
			return nil
		}
		return n.Value
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		var v int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
			t.errorf(n, path, "want an integer, found %s", kindName(n))
			return nil
		}
		return v
	case reflect.Bool:
		var v bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
			t.errorf(n, path, "want true or false, found %s", kindName(n))
			return nil
		}
		return v
	}
	t.errorf(n, path, "internal error: no translation for Go type %s", typ)
	return nil
}
