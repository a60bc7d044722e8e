//go:build root

package pull_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/pull/pulltest"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// watcherEnv, when set, makes the test binary the staging watcher of
// TestAttackBarePullEscalation instead of running tests: it watches the
// directory the variable names.
const watcherEnv = "STRATA_TEST_STAGING_WATCHER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(watcherEnv); dir != "" {
		os.Exit(watchStaging(dir, os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// fileCapSetuid is a security.capability value (VFS_CAP_REVISION_2,
// effective) granting CAP_SETUID: what a hostile object would plant so
// that its payload runs with root's powers.
var fileCapSetuid = []byte{0x01, 0x00, 0x00, 0x02, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// hostileSetuidObject is a well-formed .filez whose header declares
// uid 0, mode 04755 and a file capability, and whose payload is a shell
// script padded to 1 MiB: not the object the signed commit names.
func hostileSetuidObject(t *testing.T) []byte {
	t.Helper()
	payload := []byte("#!/bin/sh\nexec /bin/sh -p\n" + strings.Repeat("#", 1<<20))
	fi := ostree.FileInfo{UID: 0, GID: 0, Mode: ostree.ModeReg | 0o4755,
		Xattrs: ostree.CanonicalXattrs([]ostree.Xattr{{Name: "security.capability", Value: fileCapSetuid}})}
	var buf bytes.Buffer
	buf.Write(ostree.ArchiveHeader(fi, uint64(len(payload))))
	zw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(payload)
	zw.Close()
	return buf.Bytes()
}

// watchReport is what the watcher saw: the directories it watched or was
// refused, and every file it got hold of (an O_PATH descriptor taken when
// the file appeared), as that file was at the end.
type watchReport struct {
	Watched []string      `json:"watched"`
	Refused []string      `json:"refused"`
	Files   []watchedFile `json:"files"`
}

type watchedFile struct {
	Path     string `json:"path"`
	UID      uint32 `json:"uid"`
	Mode     uint32 `json:"mode"`
	Cap      bool   `json:"cap"`      // carries security.capability
	Readable bool   `json:"readable"` // the watcher could open it for reading
}

// TestAttackBarePullEscalation is the local privilege escalation through a
// bare pull: a hostile server on loopback serves, for an object of a
// signed commit, a body declaring uid 0, mode 04755 and
// security.capability, while a local process watches tmp/ with inotify and
// takes an O_PATH descriptor to every file that appears (the descriptor
// outlives the unlink, so the file could later be run through
// /proc/self/fd). The pull must fail as corrupt, and:
//
//   - an unprivileged watcher (uid 65534) must get hold of no file at all,
//     neither in a repository strata created nor in one `ostree init` made
//     (tmp/ is 0755 in both; the staging directories are 0700);
//   - a root observer, who can see everything, must never see a file with
//     the declared setuid bit or capability: metadata comes after
//     verification.
func TestAttackBarePullEscalation(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name    string
		uid     uint32
		tmp0755 bool
	}{
		{"unprivileged-watcher/strata-repo", 65534, false},
		{"unprivileged-watcher/tmp-0755", 65534, true},
		{"root-observer/tmp-0755", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A tree every user may traverse, as / and /sysroot are.
			base, err := os.MkdirTemp("", "strata-escalation-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(base) })
			if err := os.Chmod(base, 0o755); err != nil {
				t.Fatal(err)
			}
			src := pulltest.NewSource(t)
			next := src.Commit(attackRef, pulltest.Tree{Files: nextFiles, Timestamp: 1700086400, Version: "2"})
			src.Sign(next.Commit, pulltest.Key(1))
			srv := pulltest.NewServer(t, src.Dir)
			attacked := next.FileObject("usr/bin/tool")
			srv.Handle(pulltest.Object(attacked), pulltest.Body(hostileSetuidObject(t)))

			client, err := repo.Init(filepath.Join(base, "repo"), repo.ModeBare)
			if err != nil {
				t.Fatal(err)
			}
			client.SetFsync(false)
			t.Cleanup(func() { client.Close() })
			tmp := filepath.Join(client.Path(), "tmp")
			if tc.tmp0755 {
				if err := os.Chmod(tmp, 0o755); err != nil {
					t.Fatal(err)
				}
			}

			w := startWatcher(t, base, tmp, tc.uid)
			e := &attackEnv{trusted: secretKey(t, 1)}
			opts := pull.Options{URL: srv.URL, Refs: []string{attackRef},
				Retry: pull.RetryPolicy{Attempts: 1}, RequestTimeout: 30 * time.Second}
			e.verifying(&opts)
			_, err = pull.Pull(t.Context(), client, opts)
			rep := w.stop(t)
			checkErr(t, err, errdefs.ErrCorrupt, attacked.Checksum.String())
			t.Logf("watcher (uid %d) watched %d directories, was refused %v, held %d files", tc.uid, len(rep.Watched), rep.Refused, len(rep.Files))

			for _, f := range rep.Files {
				if f.Mode&0o7000 != 0 || f.Cap {
					t.Errorf("file %s existed with mode %#o, owner %d, capability %v: server-chosen metadata before verification", f.Path, f.Mode, f.UID, f.Cap)
				}
				if tc.uid != 0 && f.Readable {
					t.Errorf("the unprivileged watcher could read %s (mode %#o)", f.Path, f.Mode)
				}
			}
			switch {
			case tc.uid != 0 && len(rep.Files) > 0:
				var names []string
				for _, f := range rep.Files {
					names = append(names, f.Path)
				}
				t.Errorf("the unprivileged watcher got hold of %d staged files, want none: %v", len(rep.Files), names)
			case tc.uid != 0 && tc.tmp0755 && len(rep.Refused) == 0:
				t.Errorf("the unprivileged watcher was refused no staging directory (watched %v): it could look into them", rep.Watched)
			case tc.uid == 0 && len(rep.Files) == 0:
				t.Errorf("the root observer saw no file appear: it did not watch")
			}
		})
	}
}

type watcher struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

// startWatcher runs a copy of the test binary as uid watching dir, and
// returns once its inotify watch is in place.
func startWatcher(t *testing.T, base, dir string, uid uint32) *watcher {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's own directory is root's 0700 build directory.
	bin := filepath.Join(base, "watcher.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	var stdin io.WriteCloser
	var out io.ReadCloser
	// A process forked by a parallel subtest while the copy was open for
	// writing holds it until it execs: the exec then fails with ETXTBSY for a
	// moment (golang.org/issue/22315). Try again, briefly.
	for attempt := 0; ; attempt++ {
		cmd = exec.Command(bin)
		cmd.Env = []string{watcherEnv + "=" + dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		cmd.Stderr = os.Stderr
		if stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if out, err = cmd.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
		err = cmd.Start()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 50 {
			t.Fatalf("starting the watcher as uid %d: %v", uid, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	w := &watcher{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(out)}
	line, err := w.stdout.ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("watcher said %q, %v; want ready", line, err)
	}
	return w
}

// stop tells the watcher to report and returns its report.
func (w *watcher) stop(t *testing.T) watchReport {
	t.Helper()
	w.stdin.Close()
	var rep watchReport
	if err := json.NewDecoder(w.stdout).Decode(&rep); err != nil {
		t.Fatalf("reading the watcher's report: %v", err)
	}
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("watcher: %v", err)
	}
	return rep
}

// watchStaging is the watcher process: it watches dir and every directory
// that appears under it, takes an O_PATH descriptor to every file that
// appears, and when stdin ends writes a watchReport of what those files
// are now.
func watchStaging(dir string, stdin io.Reader, stdout io.Writer) int {
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inotify:", err)
		return 1
	}
	var (
		rep     watchReport
		watches = map[int]string{}
		held    = map[[2]uint64]int{} // dev, ino -> fd
		paths   = map[int]string{}
	)
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_ONLYDIR
	var watch func(p string)
	hold := func(p string) {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			unix.Close(fd)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				watch(p)
			}
			return
		}
		k := [2]uint64{st.Dev, st.Ino}
		if _, ok := held[k]; ok {
			unix.Close(fd)
			return
		}
		held[k], paths[fd] = fd, p
	}
	watch = func(p string) {
		for _, w := range watches {
			if w == p {
				return
			}
		}
		wd, err := unix.InotifyAddWatch(ino, p, mask)
		if err != nil {
			rep.Refused = append(rep.Refused, p)
			return
		}
		watches[wd] = p
		rep.Watched = append(rep.Watched, p)
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			hold(filepath.Join(p, e.Name()))
		}
	}
	drain := func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(ino, buf)
			if n <= 0 || err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
				off += unix.SizeofInotifyEvent + nameLen
				if d, ok := watches[wd]; ok && name != "" {
					hold(filepath.Join(d, name))
				}
			}
		}
	}
	watch(dir)
	fmt.Fprintln(stdout, "ready")
	var mu sync.Mutex
	done := false
	go func() {
		io.Copy(io.Discard, stdin)
		mu.Lock()
		done = true
		mu.Unlock()
	}()
	for {
		fds := []unix.PollFd{{Fd: int32(ino), Events: unix.POLLIN}}
		unix.Poll(fds, 20)
		drain()
		mu.Lock()
		d := done
		mu.Unlock()
		if d {
			drain()
			break
		}
	}
	for fd, p := range paths {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue
		}
		proc := "/proc/self/fd/" + strconv.Itoa(fd)
		_, capErr := unix.Getxattr(proc, "security.capability", nil)
		f := watchedFile{Path: p, UID: st.Uid, Mode: st.Mode & 0o7777, Cap: capErr == nil}
		if rfd, err := unix.Open(proc, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			f.Readable = true
			unix.Close(rfd)
		} else if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
			fmt.Fprintln(os.Stderr, "reopening", p, err)
		}
		rep.Files = append(rep.Files, f)
	}
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}
