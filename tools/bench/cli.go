package main

import (
	"fmt"
	"strconv"
)

// benchTimestamp is the commit timestamp both tools are given, so equal trees give equal commits.
const benchTimestamp = 1700000000

// benchBranch is the ref every benchmark commit goes to.
const benchBranch = "bench"

// cli renders one benchmarked program's command lines. Each method returns an argv (program
// first). The strata forms follow docs/design.md's command surface; the ostree forms are the
// equivalent `ostree` 2022.7 invocations. A new operation adds a method here and one op in ops.go.
type cli interface {
	name() string
	initRepo(repo, mode string) []string
	commit(repo, branch, tree string) []string
	checkout(repo, mode, rev, dest string) []string
	fsck(repo string) []string
}

var (
	_ cli = strataCLI{}
	_ cli = ostreeCLI{}
)

type strataCLI struct{ bin string }

func (strataCLI) name() string { return "strata" }

func (c strataCLI) initRepo(repo, mode string) []string {
	return []string{c.bin, "repo", "init", "--repo", repo, "--mode", mode}
}

func (c strataCLI) commit(repo, branch, tree string) []string {
	return []string{c.bin, "repo", "commit", "--repo", repo, "--branch", branch, "--tree", tree,
		"--subject", "s", "--timestamp", strconv.Itoa(benchTimestamp)}
}

// checkout uses a user-mode checkout (-U) for bare-user repositories, like ostreeCLI.checkout:
// without it both tools copy every file (as root, with ownership). Verification stays at its
// default (on).
func (c strataCLI) checkout(repo, mode, rev, dest string) []string {
	argv := []string{c.bin, "repo", "checkout", "--repo", repo}
	if mode == "bare-user" || mode == "bare-user-only" {
		argv = append(argv, "-U")
	}
	return append(argv, rev, dest)
}

func (c strataCLI) fsck(repo string) []string {
	return []string{c.bin, "repo", "fsck", "--repo", repo}
}

type ostreeCLI struct{ bin string }

func (ostreeCLI) name() string { return "ostree" }

func (c ostreeCLI) initRepo(repo, mode string) []string {
	return []string{c.bin, "--repo=" + repo, "init", "--mode=" + mode}
}

// commit passes the timestamp as "@UNIX": ostree parses --timestamp with a date parser that
// takes that form for seconds since the epoch.
func (c ostreeCLI) commit(repo, branch, tree string) []string {
	return []string{c.bin, "--repo=" + repo, "commit", "-b", branch, "--tree=dir=" + tree,
		"-s", "s", fmt.Sprintf("--timestamp=@%d", benchTimestamp)}
}

// checkout uses a user-mode checkout (-U) for bare-user repositories: that is the mode meant
// for them, and it hardlinks from the repository as strata does. Archive repos need a copy.
func (c ostreeCLI) checkout(repo, mode, rev, dest string) []string {
	argv := []string{c.bin, "--repo=" + repo, "checkout"}
	if mode == "bare-user" || mode == "bare-user-only" {
		argv = append(argv, "-U")
	}
	return append(argv, rev, dest)
}

func (c ostreeCLI) fsck(repo string) []string {
	return []string{c.bin, "--repo=" + repo, "fsck"}
}
