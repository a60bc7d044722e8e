package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// environment is what the report header says about the machine and the inputs.
type environment struct {
	Date        string            `json:"date"`
	CPU         string            `json:"cpu"`
	Cores       int               `json:"cores"`
	Kernel      string            `json:"kernel"`
	Ostree      string            `json:"ostree_version,omitempty"`
	Strata      string            `json:"strata_commit,omitempty"`
	Runs        int               `json:"runs"`
	CachesDrop  string            `json:"page_cache_dropped"`
	Corpora     map[string]corpus `json:"corpora"`
	CorpusOrder []string          `json:"-"`
}

// corpus is one input tree and the facts scripts/corpus recorded about it.
type corpus struct {
	Name string            `json:"name"`
	Dir  string            `json:"dir"`
	Info map[string]string `json:"info"`
}

func (c corpus) summary() string {
	s := fmt.Sprintf("%s, %s entries (%s regular files)", c.Info["size"], c.Info["entries"], c.Info["files"])
	if v := c.Info["variant"]; v != "" {
		s += fmt.Sprintf("; %s %s + %s", c.Info["suite"], v, c.Info["packages"])
	}
	return s
}

func (e *environment) render(w io.Writer, tools []string) {
	fmt.Fprintln(w, "## strata vs ostree")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- date: %s\n", e.Date)
	fmt.Fprintf(w, "- CPU: %s, %d cores; kernel %s\n", e.CPU, e.Cores, e.Kernel)
	fmt.Fprintf(w, "- tools: %s; ostree %s; strata %s\n", strings.Join(tools, ", "), orNA(e.Ostree), orNA(e.Strata))
	fmt.Fprintf(w, "- runs per cell: %d (median of each metric)\n", e.Runs)
	fmt.Fprintf(w, "- page cache dropped: %s\n", e.CachesDrop)
	for _, name := range e.CorpusOrder {
		fmt.Fprintf(w, "- corpus %s: %s\n", name, e.Corpora[name].summary())
	}
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// parseCPUModel returns the first "model name" of /proc/cpuinfo contents.
func parseCPUModel(cpuinfo string) string {
	sc := bufio.NewScanner(strings.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// parseOstreeVersion returns the Version line of `ostree --version` output.
func parseOstreeVersion(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Version:"); ok {
			return strings.Trim(strings.TrimSpace(v), `'"`)
		}
	}
	return ""
}

// parseInfo reads scripts/corpus's key=value info files.
func parseInfo(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func collectEnvironment(ctx context.Context, root, ostreeBin string, runs int, drop *cacheDropper) *environment {
	e := &environment{
		Date:       time.Now().UTC().Format(time.RFC3339),
		CPU:        "unknown",
		Cores:      runtime.NumCPU(),
		Kernel:     "unknown",
		Runs:       runs,
		CachesDrop: drop.String(),
		Corpora:    map[string]corpus{},
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		e.CPU = parseCPUModel(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, ostreeBin, "--version").Output(); err == nil {
		e.Ostree = parseOstreeVersion(string(out))
	}
	git := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	git.Dir = root
	if out, err := git.Output(); err == nil {
		e.Strata = strings.TrimSpace(string(out))
	}
	return e
}

// repoRoot finds the module root (the directory with strata's go.mod) from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/strata-os/strata\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the strata module (no go.mod found)")
		}
		dir = parent
	}
}

// buildStrata builds bin/strata when it is missing or older than a Go source of the module.
func buildStrata(ctx context.Context, root string, log io.Writer) (string, error) {
	bin := filepath.Join(root, "bin", "strata")
	st, err := os.Stat(bin)
	if err == nil {
		newer, err := newerSource(root, st.ModTime())
		if err != nil {
			return "", err
		}
		if newer == "" {
			return bin, nil
		}
		fmt.Fprintf(log, "bench: %s is newer than bin/strata; rebuilding\n", newer)
	}
	// The tags and flags of `make build`: the same binary the figures describe.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags=-s -w", "-o", bin, "./cmd/strata")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = log, log
	fmt.Fprintln(log, "bench: CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -ldflags='-s -w' -o bin/strata ./cmd/strata")
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building bin/strata: %w", err)
	}
	return bin, nil
}

// newerSource returns a Go source or module file under root modified after t, or "".
func newerSource(root string, t time.Time) (string, error) {
	var found string
	stop := errors.New("stop")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".cache", "bin", "testdata", "tools":
				return filepath.SkipDir
			}
			return nil
		}
		if n := d.Name(); !strings.HasSuffix(n, ".go") && n != "go.mod" && n != "go.sum" {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().After(t) {
			found, _ = filepath.Rel(root, p)
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return "", err
	}
	return found, nil
}

// ensureCorpora resolves corpus names (built by scripts/corpus under .cache/corpus when
// missing) and directory paths (used as they are).
func ensureCorpora(ctx context.Context, root string, names []string, log io.Writer) ([]corpus, error) {
	cacheDir := filepath.Join(root, ".cache", "corpus")
	if d := os.Getenv("CORPUS_DIR"); d != "" {
		cacheDir = d
	}
	var missing []string
	for _, n := range names {
		if strings.Contains(n, "/") {
			continue
		}
		if _, err := os.Stat(filepath.Join(cacheDir, n+".info")); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "corpus"), missing...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CORPUS_DIR="+cacheDir)
		cmd.Stdout, cmd.Stderr = log, log
		fmt.Fprintf(log, "bench: scripts/corpus %s\n", strings.Join(missing, " "))
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("building corpora %s: %w", strings.Join(missing, ", "), err)
		}
	}
	var out []corpus
	for _, n := range names {
		if strings.Contains(n, "/") {
			dir, err := filepath.Abs(n)
			if err != nil {
				return nil, err
			}
			info, err := measureTree(dir)
			if err != nil {
				return nil, err
			}
			out = append(out, corpus{Name: filepath.Base(dir), Dir: dir, Info: info})
			continue
		}
		b, err := os.ReadFile(filepath.Join(cacheDir, n+".info"))
		if err != nil {
			return nil, err
		}
		out = append(out, corpus{Name: n, Dir: filepath.Join(cacheDir, n), Info: parseInfo(string(b))})
	}
	return out, nil
}

// measureTree computes the info scripts/corpus records, for a corpus given as a path.
func measureTree(dir string) (map[string]string, error) {
	var size, entries, files int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		entries++
		if d.Type().IsRegular() {
			files++
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("measuring corpus %s: %w", dir, err)
	}
	return map[string]string{
		"size":    fmtBytes(size),
		"entries": strconv.FormatInt(entries, 10),
		"files":   strconv.FormatInt(files, 10),
	}, nil
}
