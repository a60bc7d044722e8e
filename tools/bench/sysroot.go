package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The sysroot ops deploy the corpus as an OS: `strata deploy/undeploy` against `ostree admin
// deploy/undeploy`, each on a sysroot that its own tool made (sysroot init, or admin init-fs
// and os-init) with stateroot benchOS. They are not per repository mode: a sysroot's
// repository is always bare, so they run once per corpus, in the group sysrootLabel.
//
// Unmeasured setup, once per tool (sysroot_fixture.go): a template sysroot whose repository
// holds two commits, each made by the tool itself: base, the corpus plus a fake kernel and
// initramfs (usr/lib/modules/6.1.0-bench), and next, base with one Debian package changed
// (pullUpdate, as the incremental pull has it), a child of base. Every measured run gets a
// fresh hardlinked copy of the template (cp -al) with its own tmpfs mounted on S/boot: `ostree
// admin` freezes the filesystem of S/boot while it syncs, which a tmpfs does not support, so
// ostree runs with its default syncing (OSTREE_SYSROOT_OPTS unset) and the machine's root
// filesystem is never frozen. strata gets the same tmpfs, for a fair comparison. The run's
// cleanup unmounts it and removes the copy.
//
// The result both tools must agree on is the deployment list after the run, as `strata
// status --json` reads it from either sysroot: CHECKSUM.SERIAL in boot order. Each op also
// checks the effect it exists for (kernel arguments, the /etc merge, the prune) and fails the
// cell when it is missing.
func init() {
	ops = append(ops,
		op{
			name: "deploy",
			desc: "first deployment of the corpus commit (with a fake 8 MiB kernel and 30 MiB initramfs) into an empty stateroot, with two --karg; S/boot is a tmpfs",
			prepare: func(ctx context.Context, f *fixture) (func(), error) {
				return prepareSysroot(ctx, f, 0)
			},
			argv: func(f *fixture) []string {
				r := sysrootRuns[f]
				return deployArgv(f.cli, r.dir, r.tmpl.base, benchKargs)
			},
			result:  func(f *fixture, _ string) (string, error) { return checkDeploy(f) },
			sysroot: true,
		},
		op{
			name: "redeploy",
			desc: "deploy the next commit (one package changed) over the corpus deployment, whose /etc has a local change: a hardlink checkout of a mostly shared tree, the /etc merge, the inherited kernel arguments",
			prepare: func(ctx context.Context, f *fixture) (func(), error) {
				return prepareSysroot(ctx, f, 1)
			},
			argv: func(f *fixture) []string {
				r := sysrootRuns[f]
				return deployArgv(f.cli, r.dir, r.tmpl.next, nil)
			},
			result:  func(f *fixture, _ string) (string, error) { return checkRedeploy(f) },
			sysroot: true,
		},
		op{
			name: "undeploy-cleanup",
			desc: "with the next and the corpus deployments present and no other ref, undeploy 1 (the corpus one): the switch, the removal of its directory and the prune of the objects only it used",
			prepare: func(ctx context.Context, f *fixture) (func(), error) {
				return prepareSysroot(ctx, f, 2)
			},
			argv: func(f *fixture) []string {
				return undeployArgv(f.cli, sysrootRuns[f].dir, 1)
			},
			result:  func(f *fixture, _ string) (string, error) { return checkUndeploy(f) },
			sysroot: true,
		},
	)
}

const (
	// benchOS is the stateroot the sysroot ops deploy into.
	benchOS = "bench"
	// nextBranch is the ref of the next commit in a template's repository.
	nextBranch = "bench-next"
	// sysrootMode is the repository mode of a sysroot, sysrootLabel the group of its ops.
	sysrootMode  = "bare"
	sysrootLabel = "sysroot (bare)"
	// localConf is the file the redeploy op adds to /etc before deploying; the merge must keep it.
	localConf = "bench-local.conf"
	// localConfText is its content, and the content the op gives /etc/hostname.
	localConfText = "# a local setting the /etc merge must keep\nkey=value\n"
	hostnameText  = "bench-node\n"
)

// benchKargs are the kernel arguments of the first deployment; the redeploy inherits them.
var benchKargs = []string{"root=LABEL=bench-root", "console=ttyS0,115200"}

// group is one table of the report: the ops that run on one kind of fixture.
type group struct {
	label string // the table's title after the corpus name, and the cells' Mode
	mode  string // the fixtures' repository mode
	dir   string // the fixtures' directory under WORK/CORPUS
	ops   []op
}

// planGroups returns the tables of a run: the repository ops once per mode, then the sysroot
// ops once (their repository is bare whatever -modes says). Groups without ops are left out.
func planGroups(modes []string, sel []op) []group {
	var repoOps, sysOps []op
	for _, o := range sel {
		if o.sysroot {
			sysOps = append(sysOps, o)
		} else {
			repoOps = append(repoOps, o)
		}
	}
	var gs []group
	if len(repoOps) > 0 {
		for _, m := range modes {
			gs = append(gs, group{label: m, mode: m, dir: m, ops: repoOps})
		}
	}
	if len(sysOps) > 0 {
		gs = append(gs, group{label: sysrootLabel, mode: sysrootMode, dir: "sysroot", ops: sysOps})
	}
	return gs
}

// deployArgv is the measured deploy of rev into stateroot benchOS of sysroot s. Without kargs
// the new deployment inherits those of the merge deployment.
func deployArgv(c cli, s, rev string, kargs []string) []string {
	switch c := c.(type) {
	case strataCLI:
		argv := []string{c.bin, "deploy", "--sysroot", s, "--os", benchOS, rev}
		for _, k := range kargs {
			argv = append(argv, "--karg", k)
		}
		return argv
	case ostreeCLI:
		argv := []string{c.bin, "admin", "deploy", "--sysroot=" + s, "--os=" + benchOS}
		for _, k := range kargs {
			argv = append(argv, "--karg="+k)
		}
		return append(argv, rev)
	}
	panic(fmt.Sprintf("internal error: no deploy command for %T", c))
}

// undeployArgv removes the deployment at index; both tools then clean up and prune.
func undeployArgv(c cli, s string, index int) []string {
	switch c := c.(type) {
	case strataCLI:
		return []string{c.bin, "undeploy", "--sysroot", s, strconv.Itoa(index)}
	case ostreeCLI:
		return []string{c.bin, "admin", "undeploy", "--sysroot=" + s, strconv.Itoa(index)}
	}
	panic(fmt.Sprintf("internal error: no undeploy command for %T", c))
}

// sysrootRun is the state of a sysroot op's current run on one fixture.
type sysrootRun struct {
	dir  string // the run's sysroot S
	tmpl *sysrootTemplate
}

// sysrootRuns holds the current run of each fixture (ops run one at a time, on the harness's
// goroutine only).
var sysrootRuns = map[*fixture]*sysrootRun{}

// prepareSysroot gives f a fresh copy of its template sysroot with S/boot on a tmpfs, then
// deploys into it, unmeasured: nothing (deploys 0), base with benchKargs and a local /etc
// change (1), or base then next with the user refs deleted so that only the deployments hold
// their commits (2).
func prepareSysroot(ctx context.Context, f *fixture, deploys int) (cleanup func(), err error) {
	if sc, ok := f.cli.(strataCLI); ok && sc.bin != "" {
		strataBinary = sc.bin
	}
	tmpl, err := ensureTemplate(ctx, f)
	if err != nil {
		return nil, err
	}
	s := filepath.Join(f.dir, "run")
	release, err := copySysroot(ctx, tmpl.dir, s)
	if release != nil {
		cleanup = func() {
			delete(sysrootRuns, f)
			if err := release(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: removing sysroot %s: %v\n", s, err)
			}
		}
	}
	if err != nil {
		return cleanup, err
	}
	sysrootRuns[f] = &sysrootRun{dir: s, tmpl: tmpl}
	if deploys >= 1 {
		if err := setupRun(ctx, f, deployArgv(f.cli, s, tmpl.base, benchKargs)); err != nil {
			return cleanup, fmt.Errorf("deploying the corpus commit: %w", err)
		}
		st, err := sysrootStatus(ctx, s)
		if err != nil {
			return cleanup, err
		}
		if len(st) != 1 {
			return cleanup, fmt.Errorf("after the setup deploy: deployments %s, want one", deploymentList(st))
		}
		if err := changeEtc(filepath.Join(st[0].Path, "etc")); err != nil {
			return cleanup, err
		}
	}
	if deploys >= 2 {
		if err := setupRun(ctx, f, deployArgv(f.cli, s, tmpl.next, nil)); err != nil {
			return cleanup, fmt.Errorf("deploying the next commit: %w", err)
		}
		for _, ref := range []string{benchBranch, nextBranch} {
			if err := os.Remove(filepath.Join(s, "ostree/repo/refs/heads", ref)); err != nil {
				return cleanup, fmt.Errorf("deleting ref %s of the sysroot repository: %w", ref, err)
			}
		}
	}
	// The measured command runs next: make sure once more that it cannot freeze the root fs.
	return cleanup, requireBootTmpfs(s)
}

// setupRun runs an unmeasured command on the run's sysroot, S/boot checked to be a tmpfs first.
func setupRun(ctx context.Context, f *fixture, argv []string) error {
	s := sysrootRuns[f].dir
	if err := requireBootTmpfs(s); err != nil {
		return err
	}
	_, err := execute(ctx, s, argv)
	return err
}

// changeEtc makes a local change in a deployment's /etc: a new file and a changed (or new)
// hostname.
func changeEtc(etc string) error {
	if err := os.WriteFile(filepath.Join(etc, localConf), []byte(localConfText), 0o644); err != nil {
		return fmt.Errorf("changing /etc: %w", err)
	}
	p := filepath.Join(etc, "hostname")
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("changing /etc: %w", err)
	}
	if err := os.WriteFile(p, []byte(hostnameText), 0o644); err != nil {
		return fmt.Errorf("changing /etc: %w", err)
	}
	return nil
}

// statusDeployment is the part of `strata status --json` the sysroot ops compare (Path is
// absolute).
type statusDeployment struct {
	OSName   string   `json:"osname"`
	Checksum string   `json:"commit"`
	Serial   int      `json:"serial"`
	Kargs    []string `json:"kargs"`
	Path     string   `json:"path"`
}

// parseStatus reads the deployments of `strata status --json` output.
func parseStatus(out []byte) ([]statusDeployment, error) {
	var st struct {
		Deployments *[]statusDeployment `json:"deployments"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("reading strata status --json: %w", err)
	}
	if st.Deployments == nil {
		return nil, fmt.Errorf("strata status --json printed no deployments list")
	}
	for _, d := range *st.Deployments {
		if !checksumRE.MatchString(d.Checksum) || d.Path == "" {
			return nil, fmt.Errorf("strata status --json: deployment %q.%d without checksum or path", d.Checksum, d.Serial)
		}
	}
	return *st.Deployments, nil
}

// deploymentList is the comparable result of a sysroot op: CHECKSUM.SERIAL of each deployment
// in boot order, space-separated, or "none".
func deploymentList(ds []statusDeployment) string {
	if len(ds) == 0 {
		return "none"
	}
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%s.%d", d.Checksum, d.Serial))
	}
	return strings.Join(s, " ")
}

// sysrootStatus reads the deployments of sysroot s with `strata status --json`, which reads
// ostree's layout as well as its own.
func sysrootStatus(ctx context.Context, s string) ([]statusDeployment, error) {
	bin, err := strataBin(ctx)
	if err != nil {
		return nil, err
	}
	r, err := execute(ctx, s, []string{bin, "status", "--sysroot", s, "--json"})
	if err != nil {
		return nil, err
	}
	return parseStatus([]byte(r.stdout))
}

// checkList compares the deployments to the wanted commits (serials 0, stateroot benchOS).
func checkList(ds []statusDeployment, want ...string) error {
	var got, exp []string
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%s/%s.%d", d.OSName, d.Checksum, d.Serial))
	}
	for _, c := range want {
		exp = append(exp, fmt.Sprintf("%s/%s.0", benchOS, c))
	}
	if !slices.Equal(got, exp) {
		return fmt.Errorf("deployments %v, want %v", got, exp)
	}
	return nil
}

func checkDeploy(f *fixture) (string, error) {
	r := sysrootRuns[f]
	st, err := sysrootStatus(context.Background(), r.dir)
	if err != nil {
		return "", err
	}
	if err := checkList(st, r.tmpl.base); err != nil {
		return deploymentList(st), err
	}
	if !slices.Equal(st[0].Kargs, benchKargs) {
		return deploymentList(st), fmt.Errorf("kernel arguments %q, want %q", st[0].Kargs, benchKargs)
	}
	return deploymentList(st), nil
}

func checkRedeploy(f *fixture) (string, error) {
	r := sysrootRuns[f]
	st, err := sysrootStatus(context.Background(), r.dir)
	if err != nil {
		return "", err
	}
	if err := checkList(st, r.tmpl.next, r.tmpl.base); err != nil {
		return deploymentList(st), err
	}
	if !slices.Equal(st[0].Kargs, benchKargs) {
		return deploymentList(st), fmt.Errorf("kernel arguments %q, want the inherited %q", st[0].Kargs, benchKargs)
	}
	etc := filepath.Join(st[0].Path, "etc")
	for name, want := range map[string]string{localConf: localConfText, "hostname": hostnameText} {
		b, err := os.ReadFile(filepath.Join(etc, name))
		if err != nil || string(b) != want {
			return deploymentList(st), fmt.Errorf("the /etc merge lost the local /etc/%s (%q, %v)", name, b, err)
		}
	}
	return deploymentList(st), nil
}

func checkUndeploy(f *fixture) (string, error) {
	r := sysrootRuns[f]
	st, err := sysrootStatus(context.Background(), r.dir)
	if err != nil {
		return "", err
	}
	if err := checkList(st, r.tmpl.next); err != nil {
		return deploymentList(st), err
	}
	gone := []string{
		filepath.Join(r.dir, "ostree/deploy", benchOS, "deploy", r.tmpl.base+".0"),
		filepath.Join(r.dir, "ostree/repo/objects", r.tmpl.base[:2], r.tmpl.base[2:]+".commit"),
	}
	for _, p := range gone {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			return deploymentList(st), fmt.Errorf("%s is still there after the undeploy (%v)", p, err)
		}
	}
	return deploymentList(st), nil
}
