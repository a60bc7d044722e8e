package compose

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// Source is one apt source: an archive, a suite and its components.
type Source struct {
	URI        string
	Suite      string
	Components []string
	SignedBy   string // keyring file, "" for apt's default
}

// Line renders s as a one-line apt source, which mmdebstrap accepts as a
// mirror argument.
func (s Source) Line() string {
	opt := ""
	if s.SignedBy != "" {
		opt = "[signed-by=" + s.SignedBy + "] "
	}
	return "deb " + opt + s.URI + " " + s.Suite + " " + strings.Join(s.Components, " ")
}

// HostSources reads the enabled Debian archive sources of the apt
// configuration under root (one-line .list files and deb822 .sources
// files), in file order. Sources of other archives (third-party
// repositories) are left out: an OS image is built from Debian alone.
func HostSources(root string) ([]Source, error) {
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	for _, pat := range []string{"etc/apt/sources.list.d/*.list", "etc/apt/sources.list.d/*.sources"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			return nil, err
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	var out []Source
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading apt sources: %w", err)
		}
		var ss []Source
		if strings.HasSuffix(f, ".sources") {
			ss = parseDeb822Sources(data)
		} else {
			ss = parseOneLineSources(data)
		}
		for _, s := range ss {
			if isDebianArchive(s.URI) {
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no enabled Debian archive in the apt sources under %s: %w", root, errdefs.ErrNotFound)
	}
	return out, nil
}

func isDebianArchive(uri string) bool {
	u := strings.TrimSuffix(uri, "/")
	return strings.HasSuffix(u, "/debian") || strings.HasSuffix(u, "/debian-security")
}

func parseOneLineSources(data []byte) []Source {
	var out []Source
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		w := strings.Fields(line)
		if len(w) < 3 || w[0] != "deb" {
			continue
		}
		var s Source
		w = w[1:]
		if strings.HasPrefix(w[0], "[") {
			opts := []string{}
			for len(w) > 0 {
				o := w[0]
				w = w[1:]
				opts = append(opts, strings.Trim(o, "[]"))
				if strings.HasSuffix(o, "]") {
					break
				}
			}
			for _, o := range opts {
				if k, v, ok := strings.Cut(o, "="); ok && k == "signed-by" {
					s.SignedBy = v
				}
			}
		}
		if len(w) < 2 {
			continue
		}
		s.URI, s.Suite, s.Components = w[0], w[1], w[2:]
		out = append(out, s)
	}
	return out
}

func parseDeb822Sources(data []byte) []Source {
	var out []Source
	for _, para := range strings.Split(strings.ReplaceAll(string(data), "\r", ""), "\n\n") {
		f := map[string]string{}
		key := ""
		for _, line := range strings.Split(para, "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if (line[0] == ' ' || line[0] == '\t') && key != "" {
				f[key] += " " + strings.TrimSpace(line)
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			key = strings.ToLower(strings.TrimSpace(k))
			f[key] = strings.TrimSpace(v)
		}
		if !contains(strings.Fields(f["types"]), "deb") || strings.EqualFold(f["enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(f["uris"]) {
			for _, suite := range strings.Fields(f["suites"]) {
				out = append(out, Source{URI: uri, Suite: suite, Components: strings.Fields(f["components"]), SignedBy: f["signed-by"]})
			}
		}
	}
	return out
}

// ResolveSources decides the apt sources of a compose: the manifest's
// sources, or its mirror with its suite, or else the host's Debian sources
// with their suites renamed to the manifest's suite (bookworm-updates
// becomes trixie-updates). It returns the sources and the main suite.
func ResolveSources(m *Manifest, host func() ([]Source, error)) ([]Source, string, error) {
	if len(m.Sources) > 0 {
		var out []Source
		for _, l := range m.Sources {
			out = append(out, parseOneLineSources([]byte(l))...)
		}
		suite := m.Suite
		if suite == "" && len(out) > 0 {
			suite = out[0].Suite
		}
		return out, suite, nil
	}
	var hs []Source
	var hostSuite string
	if m.Mirror == "" || m.Suite == "" {
		var err error
		if hs, err = host(); err != nil {
			return nil, "", err
		}
		hostSuite = hs[0].Suite
		for _, s := range hs {
			if !strings.Contains(s.Suite, "-") && !strings.Contains(s.Suite, "/") {
				hostSuite = s.Suite
				break
			}
		}
	}
	suite := m.Suite
	if suite == "" {
		suite = hostSuite
	}
	if m.Mirror != "" {
		comps := m.Components
		if len(comps) == 0 {
			comps = []string{"main"}
		}
		return []Source{{URI: m.Mirror, Suite: suite, Components: comps}}, suite, nil
	}
	out := make([]Source, len(hs))
	for i, s := range hs {
		if rest, ok := strings.CutPrefix(s.Suite, hostSuite); ok && (rest == "" || rest[0] == '-') {
			s.Suite = suite + rest
		}
		out[i] = s
	}
	return out, suite, nil
}

// ReleaseDate fetches the InRelease file of every source and returns the
// newest Date among them. It is the default SOURCE_DATE_EPOCH, and doubles
// as an early check that every mirror answers.
func ReleaseDate(ctx context.Context, client *http.Client, sources []Source) (time.Time, error) {
	var newest time.Time
	seen := map[string]bool{}
	for _, s := range sources {
		u := strings.TrimSuffix(s.URI, "/") + "/dists/" + s.Suite + "/InRelease"
		if seen[u] {
			continue
		}
		seen[u] = true
		data, err := fetch(ctx, client, u)
		if err != nil {
			return time.Time{}, fmt.Errorf("fetching %s: %w", u, err)
		}
		d, err := releaseDate(data)
		if err != nil {
			return time.Time{}, fmt.Errorf("reading %s: %w", u, err)
		}
		if d.After(newest) {
			newest = d
		}
	}
	return newest, nil
}

func fetch(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	if pu.Scheme == "file" {
		return os.ReadFile(pu.Path)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		class := errdefs.ErrUnavailable
		if resp.StatusCode == http.StatusNotFound {
			class = errdefs.ErrNotFound
		}
		return nil, fmt.Errorf("HTTP %s: %w", resp.Status, class)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// releaseDate reads the Date field of a (clearsigned) Release file.
func releaseDate(data []byte) (time.Time, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Date:"); ok {
			v = strings.TrimSpace(v)
			for _, layout := range []string{time.RFC1123, time.RFC1123Z} {
				if t, err := time.Parse(layout, v); err == nil {
					return t.UTC(), nil
				}
			}
			return time.Time{}, fmt.Errorf("date %q: %w", v, errdefs.ErrInvalid)
		}
		if sc.Text() == "" {
			continue
		}
	}
	return time.Time{}, fmt.Errorf("no Date field: %w", errdefs.ErrInvalid)
}
