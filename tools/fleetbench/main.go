// Command fleetbench measures the update services (`make bench` runs it after tools/bench): the
// graph server's answers per second for a 200-release stream, over loopback HTTP with keep-alive
// clients; FleetLock operations (a pre-reboot and a steady-state) per second with the bbolt store
// and with Debian's etcd; and the update agent's resident memory and CPU while it polls a graph
// that has nothing new. The load generator runs in the same process as the servers, on the same
// cores, so the server figures are lower bounds.
//
//	go run ./tools/fleetbench [-duration 5s] [-clients 32] [-strata bin/strata] [-etcd etcd] [-wrk wrk] [-only graph,lock,agent]
//
// The graph server is also measured as a separate process (`strata graph serve`) under Debian's
// wrk, so that neither the load generator nor its garbage share the server's CPU figure.
//
// -cpuprofile writes a CPU profile of the whole run (servers and load generator).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/graph"
	"github.com/strata-os/strata/internal/graphserver"
	"github.com/strata-os/strata/internal/lockserver"
)

func main() {
	dur := flag.Duration("duration", 5*time.Second, "how long each load runs")
	clients := flag.Int("clients", 32, "concurrent clients")
	strata := flag.String("strata", "bin/strata", "the strata binary (for the agent's figures)")
	etcdBin := flag.String("etcd", "etcd", "Debian's etcd server binary ('' skips the etcd figure)")
	wrkBin := flag.String("wrk", "wrk", "Debian's wrk, the load generator of the graph server's figures in separate processes ('' skips them)")
	only := flag.String("only", "graph,lock,agent", "which figures to measure (comma-separated: graph, lock, agent)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	agentTime := flag.Duration("agent-time", 20*time.Second, "how long the agent polls before its figures are read")
	flag.Parse()
	want := map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		want[strings.TrimSpace(w)] = true
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	work, err := os.MkdirTemp("", "strata-fleetbench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(work)

	fmt.Printf("## Update services (%d cores, %d clients, %s each)\n\n", runtime.NumCPU(), *clients, *dur)
	fmt.Println("| what | figure | goal |")
	fmt.Println("|---|---:|---|")
	if want["graph"] {
		for _, gz := range []bool{false, true} {
			rps, p99, cpu := benchGraph(work, *clients, *dur, gz)
			fmt.Printf("| graph server, GET /v1/graph of a 200-release stream, %s | %.0f requests/s (p99 %s); %.1f µs of CPU per answer, server and clients: at most %.0f/s on %d idle cores | ≥ 20,000/s |\n",
				encodingName(gz), rps, p99, float64(cpu.Nanoseconds())/1e3, float64(runtime.NumCPU())/cpu.Seconds(), runtime.NumCPU())
		}
		graphWrk(work, *strata, *wrkBin, *clients, *dur)
	}
	if want["lock"] {
		ops := benchLock(work, "bbolt", *clients, *dur, nil)
		fmt.Printf("| fleet lock, bbolt store | %.0f lock operations/s | |\n", ops)
	}
	if want["lock"] && *etcdBin != "" {
		if bin, err := exec.LookPath(*etcdBin); err == nil {
			ops, err := withEtcd(work, bin, func(endpoint string) float64 {
				return benchLock(work, "etcd", *clients, *dur, []string{endpoint})
			})
			if err != nil {
				fmt.Printf("| fleet lock, etcd store | FAIL: %v | |\n", err)
			} else {
				fmt.Printf("| fleet lock, etcd store (Debian's etcd, one member) | %.0f lock operations/s | |\n", ops)
			}
		} else {
			fmt.Printf("| fleet lock, etcd store | not measured: %s not found (apt-get install etcd-server) | |\n", *etcdBin)
		}
	}
	if !want["agent"] {
		return
	}
	if rss, cpu, detail, err := benchAgent(work, *strata, *agentTime); err != nil {
		fmt.Printf("| agent idle | FAIL: %v | |\n", err)
	} else {
		fmt.Printf("| agent idle RSS (polling every second), peak (VmHWM) | %.1f MiB (%s) | < 20 MiB |\n", rss, detail)
		fmt.Printf("| agent CPU while polling every second | %.2f %% of a core | |\n", cpu)
	}
}

// graphWrk prints the figures of `strata graph serve` under wrk, each in its own process.
func graphWrk(work, strata, wrkName string, clients int, d time.Duration) {
	if wrkName == "" {
		return
	}
	bin, err := exec.LookPath(wrkName)
	if err != nil {
		fmt.Printf("| graph server under wrk | not measured: %s not found (apt-get install wrk) | |\n", wrkName)
		return
	}
	if _, err := os.Stat(strata); err != nil {
		fmt.Printf("| graph server under wrk | not measured: %s not found (make build) | |\n", strata)
		return
	}
	for _, gz := range []bool{false, true} {
		rps, cpu, err := benchGraphWrk(work, strata, bin, clients, d, gz)
		if err != nil {
			fmt.Printf("| graph server under wrk, %s | FAIL: %v | |\n", encodingName(gz), err)
			continue
		}
		fmt.Printf("| `strata graph serve` under wrk (separate processes, %d connections), %s | %.0f requests/s; %.1f µs of the server's CPU per answer: at most %.0f/s on %d idle cores | ≥ 20,000/s |\n",
			clients, encodingName(gz), rps, float64(cpu.Nanoseconds())/1e3, float64(runtime.NumCPU())/cpu.Seconds(), runtime.NumCPU())
	}
}

func encodingName(gz bool) string {
	if gz {
		return "gzip (Accept-Encoding: gzip, as Zincati sends)"
	}
	return "identity"
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleetbench:", err)
	os.Exit(1)
}

// writeGraph writes a 200-release stream with a barrier every 20 releases and the newest in
// rollout.
func writeGraph(dir string) graphserver.Inputs {
	var ri graph.ReleaseIndex
	for i := 1; i <= 200; i++ {
		ri.Releases = append(ri.Releases, graph.Release{Version: fmt.Sprintf("41.%d", i),
			Commits: []graph.Commit{{Architecture: "x86_64", Checksum: fmt.Sprintf("%064x", i)}}})
	}
	u := graph.Updates{Stream: "stable"}
	for i := 20; i < 200; i += 20 {
		u.Releases = append(u.Releases, graph.UpdateRelease{Version: fmt.Sprintf("41.%d", i), Metadata: graph.UpdateMetadata{Barrier: &graph.Reason{}}})
	}
	start, m, z := time.Now().Add(-time.Hour).Unix(), uint64(240), 0.0
	u.Releases = append(u.Releases, graph.UpdateRelease{Version: "41.200", Metadata: graph.UpdateMetadata{Rollout: &graph.Rollout{StartEpoch: &start, StartPercentage: &z, DurationMinutes: &m}}})
	os.MkdirAll(filepath.Join(dir, "updates"), 0o755)
	b, _ := json.Marshal(ri)
	os.WriteFile(filepath.Join(dir, "releases.json"), b, 0o644)
	b, _ = json.Marshal(u)
	os.WriteFile(filepath.Join(dir, "updates", "stable.json"), b, 0o644)
	return graphserver.Inputs{Releases: filepath.Join(dir, "releases.json"), Updates: filepath.Join(dir, "updates")}
}

func serve(h http.Handler) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }
}

// load runs fn from n goroutines for d and returns the calls per second and the 99th percentile.
func load(n int, d time.Duration, fn func(worker, i int) error) (float64, time.Duration) {
	var count atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				t := time.Now()
				if err := fn(w, i); err != nil {
					fail(err)
				}
				mine = append(mine, time.Since(t))
				count.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	p99 := time.Duration(0)
	if len(lat) > 0 {
		slices.Sort(lat)
		p99 = lat[len(lat)*99/100]
	}
	return float64(count.Load()) / d.Seconds(), p99.Round(10 * time.Microsecond)
}

// benchGraph measures graph answers per second. With gz the clients ask for gzip and read the
// compressed body as it comes (a client's decoding is not the server's cost); without it they
// ask for no compression.
//
// It also returns the CPU time (user and system, of the whole process: server and clients) per
// answer, which a busy machine does not change much: 2 cores over it bound the answers per
// second of an idle 2-core machine.
func benchGraph(work string, clients int, d time.Duration, gz bool) (float64, time.Duration, time.Duration) {
	s, err := graphserver.New(writeGraph(filepath.Join(work, "graph")))
	if err != nil {
		fail(err)
	}
	base, stop := serve(s)
	defer stop()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}}
	buf := make([][]byte, clients)
	for i := range buf {
		buf[i] = make([]byte, 64<<10)
	}
	cpu0 := processCPU()
	var answers atomic.Int64
	rps, p99 := load(clients, d, func(w, i int) error {
		answers.Add(1)
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/graph?basearch=x86_64&stream=stable&os_checksum=%064x&node_uuid=%016x%016x", base, 150, w, i), nil)
		if err != nil {
			return err
		}
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		for {
			if _, err := resp.Body.Read(buf[w]); err != nil {
				break
			}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("graph answered %s", resp.Status)
		}
		return nil
	})
	perAnswer := (processCPU() - cpu0) / time.Duration(max(answers.Load(), 1))
	return rps, p99, perAnswer
}

// processCPU is the user and system time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchLock(work, kind string, clients int, d time.Duration, endpoints []string) float64 {
	var st lockserver.Store
	var err error
	if kind == "bbolt" {
		st, err = lockserver.OpenBolt(filepath.Join(work, "lock.db"))
	} else {
		st, err = lockserver.OpenEtcd(endpoints, 5*time.Second)
	}
	if err != nil {
		fail(err)
	}
	defer st.Close()
	base, stop := serve(lockserver.New(st, lockserver.Config{DefaultSlots: uint64(clients)}, time.Now, nil))
	defer stop()
	u, _ := url.Parse(base + "/")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	cls := make([]*fleetlock.Client, clients)
	for i := range cls {
		// Each client its own group: the figure is the store's, not one semaphore's contention.
		cls[i] = &fleetlock.Client{BaseURL: u, HTTP: hc, Params: fleetlock.ClientParams{ID: fmt.Sprintf("node-%d", i), Group: fmt.Sprintf("g%d", i)}}
	}
	ops, _ := load(clients, d, func(w, i int) error {
		if i%2 == 0 {
			return cls[w].PreReboot(context.Background())
		}
		return cls[w].SteadyState(context.Background())
	})
	return ops
}

func withEtcd(work, bin string, fn func(endpoint string) float64) (float64, error) {
	port := func() int {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", port()), fmt.Sprintf("http://127.0.0.1:%d", port())
	cmd := exec.Command(bin, "--name", "bench", "--data-dir", filepath.Join(work, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "bench="+peer, "--log-level", "error")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(client + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("etcd did not become healthy: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fn(client), nil
}

// benchAgent runs `strata agent` on a sysroot with one deployment against a graph with nothing
// new, polling every second: its CPU time over d, then its peak RSS once it has run its first
// garbage collection, from /proc.
func benchAgent(work, strata string, d time.Duration) (rssMiB, cpuPct float64, detail string, err error) {
	if _, err := os.Stat(strata); err != nil {
		return 0, 0, "", fmt.Errorf("%s not found: run make build", strata)
	}
	if os.Geteuid() != 0 {
		return 0, 0, "", fmt.Errorf("needs root (a sysroot deployment)")
	}
	dir := filepath.Join(work, "agent")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(strata, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("strata %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	tree, sys := filepath.Join(dir, "tree"), filepath.Join(dir, "sys")
	for p, data := range map[string]string{
		"usr/lib/modules/6.1.0-bench/vmlinuz": "kernel\n", "usr/lib/modules/6.1.0-bench/initramfs.img": "initramfs\n",
		"usr/lib/os-release": "NAME=Bench\nID=bench\nPRETTY_NAME=\"Bench\"\n", "usr/etc/hostname": "bench\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		os.WriteFile(filepath.Join(tree, p), []byte(data), 0o644)
	}
	if _, err := run("sysroot", "init", "--sysroot", sys, "--os", "bench"); err != nil {
		return 0, 0, "", err
	}
	sysRepo := filepath.Join(sys, "ostree/repo")
	sum, err := run("repo", "commit", "--repo", sysRepo, "--branch", "bench/stable", "--tree", tree, "--metadata", "version=1")
	if err != nil {
		return 0, 0, "", err
	}
	if _, err := run("deploy", "--sysroot", sys, "--os", "bench", "bench/stable"); err != nil {
		return 0, 0, "", err
	}
	defer exec.Command("chattr", "-R", "-i", filepath.Join(sys, "ostree/deploy")).Run()
	// A graph that knows the booted release and nothing newer.
	gdir := filepath.Join(dir, "graph")
	os.MkdirAll(filepath.Join(gdir, "updates"), 0o755)
	b, _ := json.Marshal(graph.ReleaseIndex{Releases: []graph.Release{{Version: "1", Commits: []graph.Commit{{Architecture: "x86_64", Checksum: sum}}}}})
	os.WriteFile(filepath.Join(gdir, "releases.json"), b, 0o644)
	os.WriteFile(filepath.Join(gdir, "updates", "stable.json"), []byte(`{"stream":"stable","releases":[]}`), 0o644)
	gs, err := graphserver.New(graphserver.Inputs{Releases: filepath.Join(gdir, "releases.json"), Updates: filepath.Join(gdir, "updates")})
	if err != nil {
		return 0, 0, "", err
	}
	base, stop := serve(gs)
	defer stop()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "etc/strata/agent.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("3d1219c7c4c5404aaa1f6d2a48adfda4\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/strata/agent.d/50-bench.toml"),
		[]byte("[agent.timing]\nsteady_interval_secs = 1\n[cincinnati]\nbase_url = \""+base+"/\"\n"), 0o644)
	cmd := exec.Command(strata, "agent", "--root", root, "--sysroot", sys, "--stream", "stable", "--reboot-command", "")
	// gctrace prints a line per garbage collection on standard error, among the agent's logs.
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, 0, "", err
	}
	var (
		mu      sync.Mutex
		logs    strings.Builder
		gcs     atomic.Int64
		scanned = make(chan struct{})
	)
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "gc ") {
				gcs.Add(1)
				continue
			}
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		return 0, 0, "", err
	}
	defer func() { cmd.Process.Kill(); <-scanned; cmd.Wait() }()
	time.Sleep(2 * time.Second) // start-up
	t0, c0 := time.Now(), cpuTicks(cmd.Process.Pid)
	time.Sleep(d)
	t1, c1 := time.Now(), cpuTicks(cmd.Process.Pid)
	// Each poll leaves garbage on the heap, and the first collection comes only when the heap
	// reaches 4 MB (GOGC=100), after about 50 polls here or hours at the default interval; the
	// collection also allocates its own structures and runs code nothing else does. A peak read
	// before it is not the daemon's, so the figures wait for it (and for the pages it touches).
	for deadline := time.Now().Add(3 * time.Minute); gcs.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}
	time.Sleep(2 * time.Second)
	hwm := statusKB(cmd.Process.Pid, "VmHWM")
	detail = fmt.Sprintf("now, after %d garbage collections: RSS %.1f MiB = anonymous %.1f + file %.1f", gcs.Load(), float64(statusKB(cmd.Process.Pid, "VmRSS"))/1024,
		float64(statusKB(cmd.Process.Pid, "RssAnon"))/1024, float64(statusKB(cmd.Process.Pid, "RssFile"))/1024)
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if hwm == 0 || !strings.Contains(out, "update agent started") {
		return 0, 0, "", fmt.Errorf("the agent did not run: %s", out)
	}
	if gcs.Load() == 0 {
		return 0, 0, "", fmt.Errorf("the agent ran no garbage collection in %s of polling", time.Since(t0).Round(time.Second))
	}
	return float64(hwm) / 1024, float64(c1-c0) / 100 / t1.Sub(t0).Seconds() * 100, detail, nil
}

// cpuTicks is the process's user+system time in clock ticks (100 per second on Linux).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return u + sy
}

func statusKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
