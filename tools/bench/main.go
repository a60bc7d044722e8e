// Command bench runs strata and the ostree binary on the same corpora in one run and prints a
// Markdown report: wall time, CPU time and peak RSS of each operation for each tool, the
// ostree/strata wall-time ratio, and whether both produced the same result (commit checksum,
// checkout entry count). `make bench` runs it; scripts/corpus builds the corpora it uses.
//
//	go run ./tools/bench [-corpus debian,synthetic] [-modes archive,bare-user]
//	                     [-ops commit,recommit,checkout,fsck,deploy,...] [-tools strata,ostree]
//	                     [-n 1] [-json FILE] [-keep]
//
// The sysroot ops (deploy, redeploy, undeploy-cleanup) run once per corpus, whatever -modes
// says, in a table of their own ("sysroot (bare)"); they need root (a tmpfs on each sysroot's
// boot).
//
// Every measured step starts with an empty page cache when running as root. A failing command
// is reported (its stderr on standard error, FAIL in the table) and the run goes on.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// defaultTimeout bounds one command; a hung tool must not hang the whole run.
const defaultTimeout = 30 * time.Minute

type options struct {
	corpora    []string
	modes      []string
	tools      []string
	ops        []op
	runs       int
	jsonOut    string
	work       string
	keep       bool
	dropCaches bool
	timeout    time.Duration
	strataBin  string
	ostreeBin  string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childFlag {
		os.Exit(runMeasuredChild(os.Args[2:]))
	}
	var o options
	var corpora, modes, tools, opList string
	flag.StringVar(&corpora, "corpus", "debian,synthetic", "corpora: names built by scripts/corpus, or directory paths")
	flag.StringVar(&modes, "modes", "archive,bare-user", "repository modes")
	flag.StringVar(&tools, "tools", "strata,ostree", "tools to run: strata, ostree or both")
	flag.StringVar(&opList, "ops", "all", "operations, in run order: "+opNames())
	flag.IntVar(&o.runs, "n", 1, "measured runs per cell; the median is reported")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.work, "work", "", "scratch directory for repositories and checkouts (default .cache/bench)")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory afterwards")
	flag.BoolVar(&o.dropCaches, "drop-caches", true, "drop the page cache before each measured step (root only)")
	flag.DurationVar(&o.timeout, "timeout", defaultTimeout, "time limit of one command")
	flag.StringVar(&o.strataBin, "strata", "", "strata binary (default: bin/strata, rebuilt when stale)")
	flag.StringVar(&o.ostreeBin, "ostree", "/usr/bin/ostree", "ostree binary")
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	o.corpora, o.modes, o.tools = splitList(corpora), splitList(modes), splitList(tools)
	var err error
	if o.ops, err = selectOps(opList); err == nil {
		err = checkTools(o.tools)
	}
	if err == nil && o.runs < 1 {
		err = fmt.Errorf("-n %d: want at least 1", o.runs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed, err := benchmark(ctx, o, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

func opNames() string {
	var n []string
	for _, o := range ops {
		n = append(n, o.name)
	}
	return strings.Join(n, ",")
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func checkTools(tools []string) error {
	if len(tools) == 0 {
		return fmt.Errorf("-tools: none given")
	}
	for _, t := range tools {
		if t != "strata" && t != "ostree" {
			return fmt.Errorf("-tools: unknown tool %q (want strata, ostree)", t)
		}
	}
	return nil
}

// benchmark runs everything, writes the report to out and progress to log. It reports whether
// any cell failed; err is for failures that stop the whole run.
func benchmark(ctx context.Context, o options, out, log io.Writer) (failed bool, err error) {
	root, err := repoRoot()
	if err != nil {
		return false, err
	}
	clis := map[string]cli{}
	unavailable := map[string]error{}
	if slices.Contains(o.tools, "strata") {
		bin := o.strataBin
		if bin == "" {
			bin, err = buildStrata(ctx, root, log)
		}
		if err != nil {
			fmt.Fprintf(log, "bench: strata unavailable, its cells FAIL: %v\n", err)
			unavailable["strata"] = err
		}
		clis["strata"] = strataCLI{bin: bin}
	}
	if slices.Contains(o.tools, "ostree") {
		clis["ostree"] = ostreeCLI{bin: o.ostreeBin}
	}
	corpora, err := ensureCorpora(ctx, root, o.corpora, log)
	if err != nil {
		return false, err
	}
	if o.work == "" {
		o.work = filepath.Join(root, ".cache", "bench")
	}
	if !o.keep {
		defer removeAll(o.work)
	}

	drop := newCacheDropper(o.dropCaches)
	env := collectEnvironment(ctx, root, o.ostreeBin, o.runs, drop)
	for _, c := range corpora {
		env.Corpora[c.Name] = c
		env.CorpusOrder = append(env.CorpusOrder, c.Name)
	}

	var cells []cell
	groups := planGroups(o.modes, o.ops)
	for _, c := range corpora {
		for _, g := range groups {
			var fixtures []*fixture
			for _, t := range o.tools {
				fixtures = append(fixtures, &fixture{
					cli: clis[t], mode: g.mode, tree: c.Dir, unavailable: unavailable[t],
					dir: filepath.Join(o.work, c.Name, g.dir, t),
				})
			}
			for _, op := range g.ops {
				cs := runOp(ctx, o, drop, c.Name, op, fixtures, log)
				for i := range cs {
					cs[i].Mode = g.label
				}
				cells = append(cells, cs...)
				if ctx.Err() != nil {
					return true, ctx.Err()
				}
			}
			for _, f := range fixtures {
				if !o.keep {
					_ = removeAll(f.dir)
				}
			}
		}
	}
	compare(cells)

	env.render(out, o.tools)
	for _, c := range corpora {
		for _, g := range groups {
			var group []cell
			for _, cl := range cells {
				if cl.Corpus == c.Name && cl.Mode == g.label {
					group = append(group, cl)
				}
			}
			fmt.Fprintf(out, "\n### %s, %s\n\n", c.Name, g.label)
			renderTable(out, group)
		}
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "ostree/strata: ostree's median wall time over strata's (above 1: strata is faster); in brackets, with several runs, the lowest and highest ratio of the two tools' runs of the same round (they run one after the other).")
	fmt.Fprintln(out, "same: both tools produced the same result (commit: commit checksum; checkout: entry count; sysroot ops: the deployments CHECKSUM.SERIAL in boot order, read by strata status --json).")
	for _, op := range o.ops {
		fmt.Fprintf(out, "%s: %s.\n", op.name, op.desc)
	}

	for _, c := range cells {
		failed = failed || c.Failed
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(struct {
			Environment *environment `json:"environment"`
			Results     []cell       `json:"results"`
		}{env, cells}, "", "  ")
		if err != nil {
			return failed, err
		}
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return failed, err
		}
	}
	return failed, nil
}

// runOp measures op for every fixture o.runs times, interleaving the tools run by run.
func runOp(ctx context.Context, o options, drop *cacheDropper, corpusName string, op op, fixtures []*fixture, log io.Writer) []cell {
	cells := make([]cell, len(fixtures))
	for i, f := range fixtures {
		cells[i] = cell{Corpus: corpusName, Mode: f.mode, Op: op.name, Tool: f.cli.name()}
		if f.unavailable != nil {
			cells[i].Failed, cells[i].Error = true, "unavailable: "+f.unavailable.Error()
		}
	}
	for r := 1; r <= o.runs; r++ {
		for i, f := range fixtures {
			c := &cells[i]
			if c.Failed {
				continue
			}
			fmt.Fprintf(log, "bench: %s %s %s %s run %d/%d\n", corpusName, f.mode, op.name, c.Tool, r, o.runs)
			s, result, err := measureOnce(ctx, o, drop, op, f)
			if err != nil {
				c.Failed, c.Error = true, shortError(err)
				fmt.Fprintf(log, "bench: FAIL %s %s %s %s: %s\n", corpusName, f.mode, op.name, c.Tool, details(err))
				continue
			}
			if c.Result != "" && !op.resultVaries && result != c.Result {
				fmt.Fprintf(log, "bench: %s %s: result changed between runs: %s, then %s\n", op.name, c.Tool, c.Result, result)
			}
			c.Samples = append(c.Samples, s)
			c.Result = result
		}
	}
	for i := range cells {
		cells[i].Median = median(cells[i].Samples)
	}
	return cells
}

// measureOnce prepares f, drops the page cache and runs op's command under measurement.
func measureOnce(ctx context.Context, o options, drop *cacheDropper, op op, f *fixture) (sample, string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if op.prepare != nil {
		cleanup, err := op.prepare(ctx, f)
		if cleanup != nil {
			defer cleanup()
		}
		if err != nil {
			return sample{}, "", fmt.Errorf("preparing %s: %w", op.name, err)
		}
	}
	if err := drop.drop(); err != nil {
		return sample{}, "", err
	}
	r, err := execute(ctx, f.dir, op.argv(f))
	if err != nil {
		return sample{}, "", err
	}
	var result string
	if op.result != nil {
		if result, err = op.result(f, r.stdout); err != nil {
			return sample{}, "", err
		}
	}
	if op.transferred != nil {
		r.Bytes = op.transferred(f)
	}
	if op.done != nil {
		op.done(f)
	}
	return r.sample, result, nil
}
