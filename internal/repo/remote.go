package repo

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// Remote is a `[remote "NAME"]` section of the repository config, the way
// `ostree remote add` writes it (docs/formats/repository.md).
type Remote struct {
	Name string
	URL  string
	// GPGVerify and SignVerify say whether commits must carry a valid GPG
	// or ed25519 signature.
	GPGVerify  bool
	SignVerify bool
	// Ed25519Key is an inline base64 public key (verification-ed25519-key);
	// Ed25519File a path to a file of them (verification-ed25519-file).
	Ed25519Key  string
	Ed25519File string
	Branches    []string
}

func remoteGroup(name string) string { return fmt.Sprintf("remote %q", name) }

func validateRemoteName(name string) error {
	if name == "" || strings.ContainsAny(name, "/:\"[] \t\n") {
		return fmt.Errorf("remote name %q: %w", name, errdefs.ErrInvalid)
	}
	return nil
}

// AddRemote writes a remote section; an existing remote of that name is
// refused with errdefs.ErrAlreadyExists.
func (r *Repo) AddRemote(rm Remote) error {
	if err := validateRemoteName(rm.Name); err != nil {
		return err
	}
	u, err := url.Parse(rm.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
		return fmt.Errorf("remote %s: URL %q is not http, https or file: %w", rm.Name, rm.URL, errdefs.ErrInvalid)
	}
	unlock, err := r.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	cfg := r.config
	g := remoteGroup(rm.Name)
	if len(cfg.Keys(g)) > 0 {
		return fmt.Errorf("remote %s: %w", rm.Name, errdefs.ErrAlreadyExists)
	}
	cfg.Set(g, "url", rm.URL)
	if len(rm.Branches) > 0 {
		cfg.Set(g, "branches", strings.Join(rm.Branches, ";")+";")
	}
	cfg.Set(g, "gpg-verify", fmt.Sprint(rm.GPGVerify))
	if rm.SignVerify {
		cfg.Set(g, "sign-verify", "true")
	}
	if rm.Ed25519Key != "" {
		cfg.Set(g, "verification-ed25519-key", rm.Ed25519Key)
	}
	if rm.Ed25519File != "" {
		cfg.Set(g, "verification-ed25519-file", rm.Ed25519File)
	}
	return r.SetConfig(cfg)
}

// DeleteRemote removes a remote section.
func (r *Repo) DeleteRemote(name string) error {
	unlock, err := r.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	if !r.config.Delete(remoteGroup(name), "") {
		return fmt.Errorf("remote %s: %w", name, errdefs.ErrNotFound)
	}
	return r.SetConfig(r.config)
}

// GetRemote reads one remote.
func (r *Repo) GetRemote(name string) (Remote, error) {
	g := remoteGroup(name)
	cfg := r.config
	u, ok := cfg.Get(g, "url")
	if !ok {
		return Remote{}, fmt.Errorf("remote %s: %w", name, errdefs.ErrNotFound)
	}
	rm := Remote{Name: name, URL: u}
	var err error
	// libostree verifies GPG signatures unless told not to.
	if rm.GPGVerify, err = cfg.GetBool(g, "gpg-verify", true); err != nil {
		return rm, err
	}
	if rm.SignVerify, err = cfg.GetBool(g, "sign-verify", false); err != nil {
		return rm, err
	}
	rm.Ed25519Key, _ = cfg.Get(g, "verification-ed25519-key")
	rm.Ed25519File, _ = cfg.Get(g, "verification-ed25519-file")
	if b, ok := cfg.Get(g, "branches"); ok {
		for _, s := range strings.Split(b, ";") {
			if s = strings.TrimSpace(s); s != "" {
				rm.Branches = append(rm.Branches, s)
			}
		}
	}
	return rm, nil
}

// ListRemotes returns all remotes sorted by name.
func (r *Repo) ListRemotes() ([]Remote, error) {
	var out []Remote
	for _, g := range r.config.Groups() {
		var name string
		if _, err := fmt.Sscanf(g, "remote %q", &name); err != nil {
			continue
		}
		rm, err := r.GetRemote(name)
		if err != nil {
			return nil, err
		}
		out = append(out, rm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// TrackURL returns the remote that refs pulled from rawURL belong to: the
// configured remote of that URL (a trailing slash aside), else a new one
// added from tmpl (its Name and URL are filled in) and named after the
// URL's host and port, "-2", "-3"… appended if that name is taken. A pull
// by URL records its refs under that remote too, so a deployment of them
// keeps following the server (docs/upgrade.md).
func (r *Repo) TrackURL(rawURL string, tmpl Remote) (name string, added bool, err error) {
	remotes, err := r.ListRemotes()
	if err != nil {
		return "", false, err
	}
	taken := map[string]bool{}
	for _, rm := range remotes {
		if strings.TrimSuffix(rm.URL, "/") == strings.TrimSuffix(rawURL, "/") {
			return rm.Name, false, nil
		}
		taken[rm.Name] = true
	}
	base := remoteNameFor(rawURL)
	name = base
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	tmpl.Name, tmpl.URL = name, rawURL
	if err := r.AddRemote(tmpl); err != nil {
		return "", false, err
	}
	return name, true, nil
}

// remoteNameFor derives a remote name from a URL: its host and port
// ("127.0.0.1-8080"), or "url" when it has none (file:).
func remoteNameFor(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "url"
	}
	name := strings.Map(func(c rune) rune {
		if c == ':' || c == '[' || c == ']' || c == '/' || c == '"' || c <= ' ' {
			return '-'
		}
		return c
	}, u.Host)
	return strings.Trim(name, "-")
}
