package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkScript makes every request a different node: a fresh node_uuid (so a fresh wariness) on a
// node booted on release 41.150, as benchGraph's clients ask.
const wrkScript = `
local n = 0
request = function()
  n = n + 1
  local path = string.format("/v1/graph?basearch=x86_64&stream=stable&os_checksum=%064x&node_uuid=%016x%016x", 150, math.random(0, 2^31), n)
  return wrk.format("GET", path)
end
`

var wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+)(\w+)`)

// benchGraphWrk measures `strata graph serve` (the binary, in its own process) under wrk (Debian's
// wrk, another process, one thread): the answers per second, and the server's CPU time per
// answer from /proc, which neither the load generator nor the machine's other load is counted
// in. The cores divided by it bound what the server answers on an idle machine of that size.
func benchGraphWrk(work, strata, wrk string, conns int, d time.Duration, gz bool) (rps float64, cpu time.Duration, err error) {
	in := writeGraph(filepath.Join(work, "graph-wrk"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := exec.Command(strata, "graph", "serve", "--listen", addr, "--releases", in.Releases, "--updates", in.Updates)
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/v1/graph?basearch=x86_64&stream=stable")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("strata graph serve did not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	script := filepath.Join(work, "graph.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return 0, 0, err
	}
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "-s", script}
	if gz {
		args = append(args, "-H", "Accept-Encoding: gzip")
	}
	c0 := cpuTicks(srv.Process.Pid)
	out, err := exec.Command(wrk, append(args, base)...).CombinedOutput()
	c1 := cpuTicks(srv.Process.Pid)
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %v: %s", err, out)
	}
	m := wrkRequests.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("wrk printed no request count: %s", out)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	secs, _ := strconv.ParseFloat(string(m[2]), 64)
	switch string(m[3]) {
	case "ms":
		secs /= 1000
	case "m":
		secs *= 60
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "Non-2xx") {
			return 0, 0, fmt.Errorf("wrk: %s", line)
		}
	}
	if n == 0 || secs == 0 {
		return 0, 0, fmt.Errorf("wrk made no requests: %s", out)
	}
	return float64(n) / secs, time.Duration(c1-c0) * 10 * time.Millisecond / time.Duration(n), nil
}
