package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"go.yaml.in/yaml/v3"
)

// Manifest is a parsed and validated compose manifest (docs/compose.md).
type Manifest struct {
	// Path is the file the manifest was read from ("" if parsed from
	// bytes); relative overlay sources resolve against its directory.
	Path string

	Name     string   // image name: os-release IMAGE_ID, strata.compose.name
	Version  string   // commit "version" metadata, os-release VERSION_ID
	Ref      string   // ref the commit goes to
	Packages []string // Debian package names, in manifest order

	Variant string   // mmdebstrap variant; default "minbase"
	Suite   string   // Debian suite; "" = the host's
	Mirror  string   // one archive URL; "" = the host's sources
	Sources []string // one-line apt sources ("deb URI SUITE COMP..."); exclusive with Mirror
	// Components of the archive when Mirror is set; default ["main"].
	Components []string

	PathExclude []string // dpkg path-exclude globs (as shipped in the .deb)
	PathInclude []string // dpkg path-include globs (exceptions to PathExclude)

	Overlays []Overlay

	EnableUnits []string
	MaskUnits   []string

	KernelArgs []string
	// Metadata is extra commit metadata (strings), sorted by key.
	Metadata []MetadataEntry
}

// Overlay copies Source (a file or a directory's contents) to Dest in the tree.
type Overlay struct {
	Source string // absolute after parsing
	Dest   string // absolute path in the tree
}

// MetadataEntry is one extra commit metadata string.
type MetadataEntry struct{ Key, Value string }

// Problem is one finding of manifest validation, addressed by file
// position and field path (e.g. units.enable[2]).
type Problem struct {
	File      string
	Line, Col int
	Field     string
	Msg       string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File + ":")
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", p.Line, p.Col)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ManifestError is the report of every problem found in a manifest. It
// matches errdefs.ErrInvalid.
type ManifestError struct{ Problems []Problem }

func (e *ManifestError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

func (e *ManifestError) Unwrap() error { return errdefs.ErrInvalid }

var (
	// Debian policy §5.6.1: at least two characters, lowercase
	// alphanumerics and + - ., starting with an alphanumeric.
	packageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// os-release(5) IMAGE_ID and VERSION_ID: 0–9, a–z, ".", "_", "-".
	imageIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	unitRe    = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(service|socket|target|timer|path|mount|automount|swap|slice)$`)
	metaKeyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	variants  = []string{"minbase", "required", "important", "standard"}
)

// LoadManifest reads and parses the manifest file at path.
func LoadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", path, err)
	}
	m, err := ParseManifest(path, data)
	if m != nil {
		m.Path = abs
		for i := range m.Overlays {
			if !filepath.IsAbs(m.Overlays[i].Source) {
				m.Overlays[i].Source = filepath.Join(filepath.Dir(abs), m.Overlays[i].Source)
			}
		}
	}
	return m, err
}

// ParseManifest decodes and validates a manifest. name is used in error
// positions only. Every problem is reported (a *ManifestError), each with
// the line and column and the path of the field. Overlay sources stay as
// written (LoadManifest resolves them).
func ParseManifest(name string, data []byte) (*Manifest, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.add(nil, "", "%v", err)
		return nil, p.err()
	}
	if len(doc.Content) == 0 {
		p.add(nil, "", "empty manifest")
		return nil, p.err()
	}
	m := &Manifest{Variant: "minbase"}
	p.manifest(doc.Content[0], m)
	if err := p.err(); err != nil {
		return nil, err
	}
	return m, nil
}

type parser struct {
	file     string
	problems []Problem
}

func (p *parser) add(n *yaml.Node, field, format string, args ...any) {
	pr := Problem{File: p.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		pr.Line, pr.Col = n.Line, n.Column
	}
	p.problems = append(p.problems, pr)
}

func (p *parser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	sort.SliceStable(p.problems, func(i, j int) bool {
		a, b := p.problems[i], p.problems[j]
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	return &ManifestError{Problems: p.problems}
}

// fields checks that n is a mapping with known keys and returns the value
// node of each key.
func (p *parser) fields(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.add(n, path, "want a mapping, got %s", kindName(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := joinField(path, k.Value)
		switch {
		case !contains(known, k.Value):
			p.add(k, name, "unknown key (known: %s)", strings.Join(known, ", "))
		case out[k.Value] != nil:
			p.add(k, name, "duplicate key")
		default:
			out[k.Value] = v
		}
	}
	return out
}

func (p *parser) manifest(n *yaml.Node, m *Manifest) {
	f := p.fields(n, "", "name", "version", "ref", "packages", "variant", "suite", "mirror", "sources",
		"components", "path-exclude", "path-include", "overlays", "units", "kernel-args", "metadata")
	if f == nil {
		return
	}
	for _, req := range []string{"name", "version", "ref", "packages"} {
		if f[req] == nil {
			p.add(n, req, "required key is missing")
		}
	}
	if v := f["name"]; v != nil {
		if s, ok := p.str(v, "name"); ok && p.check(v, "name", s, imageIDRe.MatchString(s), "is not an image name (want 0-9, a-z, '.', '_', '-')") {
			m.Name = s
		}
	}
	if v := f["version"]; v != nil {
		if s, ok := p.str(v, "version"); ok && p.check(v, "version", s, imageIDRe.MatchString(s), "is not a version (want 0-9, a-z, '.', '_', '-', as os-release VERSION_ID)") {
			m.Version = s
		}
	}
	if v := f["ref"]; v != nil {
		if s, ok := p.str(v, "ref"); ok {
			if err := ostree.ValidateRef(s); err != nil {
				p.add(v, "ref", "%q is not a valid ref", s)
			} else {
				m.Ref = s
			}
		}
	}
	if v := f["packages"]; v != nil {
		m.Packages = p.names(v, "packages", packageRe, "is not a Debian package name")
		if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			p.add(v, "packages", "empty list")
		}
		seen := map[string]bool{}
		for i, e := range v.Content {
			if e.Kind == yaml.ScalarNode && seen[e.Value] {
				p.add(e, fmt.Sprintf("packages[%d]", i), "%q is listed twice", e.Value)
			}
			seen[e.Value] = true
		}
	}
	if v := f["variant"]; v != nil {
		if s, ok := p.str(v, "variant"); ok && p.check(v, "variant", s, contains(variants, s), "is not a variant (want one of "+strings.Join(variants, ", ")+")") {
			m.Variant = s
		}
	}
	if v := f["suite"]; v != nil {
		if s, ok := p.str(v, "suite"); ok && p.check(v, "suite", s, packageRe.MatchString(s), "is not a suite name") {
			m.Suite = s
		}
	}
	if v := f["mirror"]; v != nil {
		if s, ok := p.str(v, "mirror"); ok && p.check(v, "mirror", s, isArchiveURL(s), "is not an http, https or file URL") {
			m.Mirror = s
		}
	}
	if v := f["sources"]; v != nil {
		m.Sources = p.strs(v, "sources")
		for i, s := range m.Sources {
			if w := strings.Fields(s); len(w) < 3 || w[0] != "deb" {
				p.add(v.Content[i], fmt.Sprintf("sources[%d]", i), "%q is not a one-line apt source (deb URI SUITE [COMPONENT...])", s)
			}
		}
		if m.Mirror != "" {
			p.add(v, "sources", "mirror and sources are exclusive")
		}
	}
	if v := f["components"]; v != nil {
		m.Components = p.names(v, "components", packageRe, "is not a component name")
		if m.Mirror == "" {
			p.add(v, "components", "only used with mirror")
		}
	}
	if v := f["path-exclude"]; v != nil {
		m.PathExclude = p.paths(v, "path-exclude")
	}
	if v := f["path-include"]; v != nil {
		m.PathInclude = p.paths(v, "path-include")
	}
	if v := f["overlays"]; v != nil {
		p.overlays(v, m)
	}
	if v := f["units"]; v != nil {
		if u := p.fields(v, "units", "enable", "mask"); u != nil {
			if e := u["enable"]; e != nil {
				m.EnableUnits = p.names(e, "units.enable", unitRe, "is not a unit name")
			}
			if e := u["mask"]; e != nil {
				m.MaskUnits = p.names(e, "units.mask", unitRe, "is not a unit name")
			}
		}
	}
	if v := f["kernel-args"]; v != nil {
		m.KernelArgs = p.strs(v, "kernel-args")
		for i, s := range m.KernelArgs {
			if s == "" || strings.ContainsAny(s, " \t\n\"'") {
				p.add(v.Content[i], fmt.Sprintf("kernel-args[%d]", i), "%q is not one kernel argument (no spaces or quotes)", s)
			}
		}
	}
	if v := f["metadata"]; v != nil {
		p.metadata(v, m)
	}
}

func (p *parser) overlays(n *yaml.Node, m *Manifest) {
	if n.Kind != yaml.SequenceNode {
		p.add(n, "overlays", "want a list, got %s", kindName(n))
		return
	}
	for i, e := range n.Content {
		path := fmt.Sprintf("overlays[%d]", i)
		f := p.fields(e, path, "source", "dest")
		if f == nil {
			continue
		}
		o := Overlay{Dest: "/"}
		if v := f["source"]; v == nil {
			p.add(e, path+".source", "required key is missing")
		} else if s, ok := p.str(v, path+".source"); ok {
			o.Source = s
		}
		if v := f["dest"]; v != nil {
			if s, ok := p.str(v, path+".dest"); ok {
				clean := filepath.Clean(s)
				switch {
				case !filepath.IsAbs(s):
					p.add(v, path+".dest", "%q is not an absolute path", s)
				case under(clean, "/var") || under(clean, "/boot") || under(clean, "/usr/etc") || clean == "/usr/local" || under(clean, "/usr/local"):
					p.add(v, path+".dest", "%q is emptied or replaced by compose (see docs/compose.md)", s)
				default:
					o.Dest = clean
				}
			}
		}
		m.Overlays = append(m.Overlays, o)
	}
}

func (p *parser) metadata(n *yaml.Node, m *Manifest) {
	if n.Kind != yaml.MappingNode {
		p.add(n, "metadata", "want a mapping, got %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := "metadata." + k.Value
		switch {
		case !metaKeyRe.MatchString(k.Value):
			p.add(k, field, "%q is not a metadata key", k.Value)
		case k.Value == ostree.MetaVersion || strings.HasPrefix(k.Value, "ostree.") || strings.HasPrefix(k.Value, "strata."):
			p.add(k, field, "key %q is reserved (version, ostree.*, strata.*)", k.Value)
		default:
			if s, ok := p.str(v, field); ok {
				m.Metadata = append(m.Metadata, MetadataEntry{Key: k.Value, Value: s})
			}
		}
	}
	sort.Slice(m.Metadata, func(i, j int) bool { return m.Metadata[i].Key < m.Metadata[j].Key })
	for i := 1; i < len(m.Metadata); i++ {
		if m.Metadata[i].Key == m.Metadata[i-1].Key {
			p.add(n, "metadata."+m.Metadata[i].Key, "duplicate key")
		}
	}
}

// str returns a scalar's string value.
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.add(n, field, "want a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) strs(n *yaml.Node, field string) []string {
	if n.Kind != yaml.SequenceNode {
		p.add(n, field, "want a list, got %s", kindName(n))
		return nil
	}
	var out []string
	for i, e := range n.Content {
		if s, ok := p.str(e, fmt.Sprintf("%s[%d]", field, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) names(n *yaml.Node, field string, re *regexp.Regexp, msg string) []string {
	if n.Kind != yaml.SequenceNode {
		p.add(n, field, "want a list, got %s", kindName(n))
		return nil
	}
	var out []string
	for i, e := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if s, ok := p.str(e, f); ok && p.check(e, f, s, re.MatchString(s), msg) {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) paths(n *yaml.Node, field string) []string {
	out := p.strs(n, field)
	for i, s := range out {
		if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, "\n\"'") {
			p.add(n.Content[i], fmt.Sprintf("%s[%d]", field, i), "%q is not an absolute path pattern", s)
		}
	}
	return out
}

func (p *parser) check(n *yaml.Node, field, s string, ok bool, msg string) bool {
	if !ok {
		p.add(n, field, "%q %s", s, msg)
	}
	return ok
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return "a scalar"
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func isArchiveURL(s string) bool {
	for _, pre := range []string{"http://", "https://", "file:///"} {
		if strings.HasPrefix(s, pre) && len(s) > len(pre) && !strings.ContainsAny(s, " \t\n") {
			return true
		}
	}
	return false
}
