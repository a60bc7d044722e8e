package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 that forwards every connection to one target and delays
// each direction by a fixed one-way time, so that a loopback link gets a round-trip time of
// twice that (the kernel here has no netem). It also counts the bytes it forwards.
//
// The model: each chunk read from one side is written to the other side one delay after it
// was read, without pacing (bandwidth is what loopback gives; latency is the delay).
// Connection setup costs one round trip, as a TCP handshake does: data the client sends right
// after connecting is delivered no earlier than three one-way delays after the connect.
//
// With no delay the proxy only counts: it moves the bytes with splice(2) (io.Copy between two
// TCP connections), so that the measuring harness takes little CPU from the tools it measures
// on a small machine. Its counts then advance a chunk at a time; Bytes waits for the
// connections of a finished command to close before it reads them.
type Proxy struct {
	// Addr is the proxy's listening address, host:port.
	Addr string

	target string
	delay  time.Duration
	ln     net.Listener

	up, down atomic.Int64 // client→target, target→client
	conns    atomic.Int64

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) that delays each direction by oneWay.
func NewProxy(target string, oneWay time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting proxy to %s: %w", target, err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, delay: oneWay, ln: ln, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Bytes returns the bytes forwarded so far: client to target (requests) and target to client
// (responses), headers included. Without delay (counts a chunk at a time) and called after the
// client exited, it first waits, up to a few seconds, for the proxy to see the connections
// close, so that the counts are complete.
func (p *Proxy) Bytes() (up, down int64) {
	for deadline := time.Now().Add(5 * time.Second); p.delay == 0 && p.openConns() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	return p.up.Load(), p.down.Load()
}

func (p *Proxy) openConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.open)
}

// Conns returns the number of connections accepted so far.
func (p *Proxy) Conns() int64 { return p.conns.Load() }

// Reset sets the byte and connection counters to zero.
func (p *Proxy) Reset() {
	p.up.Store(0)
	p.down.Store(0)
	p.conns.Store(0)
}

// Close stops listening, closes every open connection and waits for the forwarding
// goroutines to end.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		p.wg.Add(1)
		go p.handle(c, time.Now())
	}
}

func (p *Proxy) handle(client net.Conn, accepted time.Time) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	// The handshake's round trip: the client's first bytes leave after SYN and SYN-ACK.
	handshake := accepted.Add(2 * p.delay)
	done := make(chan struct{}, 2)
	go func() { p.forward(server, client, handshake, &p.up); done <- struct{}{} }()
	go func() { p.forward(client, server, time.Time{}, &p.down); done <- struct{}{} }()
	<-done
	<-done
}

// chunk is data read from one side, due for the other side at due.
type chunk struct {
	due time.Time
	buf *[]byte
	n   int
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// forward copies src to dst, each chunk delayed by p.delay after it was read (and not before
// notBefore + p.delay), then half-closes dst. At most queueLen chunks (2 MiB) are in flight
// per direction; past that the reader stops and TCP flow control pushes back on the sender.
// That caps a connection at 200 MiB/s with 10 ms of delay, far above what a pull of small
// objects reaches, and keeps the proxy's memory small: a benchmark that runs it in process
// must not grow much, since on Linux a child started with vfork reports the parent's peak RSS
// as its own ru_maxrss.
func (p *Proxy) forward(dst, src net.Conn, notBefore time.Time, count *atomic.Int64) {
	if p.delay == 0 {
		p.splice(dst, src, count)
		return
	}
	const queueLen = 64
	q := make(chan chunk, queueLen)
	go func() {
		defer close(q)
		for {
			bp := bufPool.Get().(*[]byte)
			n, err := src.Read(*bp)
			if n > 0 {
				// Counted on arrival, so the count is complete once the other side got the data.
				count.Add(int64(n))
				due := time.Now()
				if due.Before(notBefore) {
					due = notBefore
				}
				q <- chunk{due: due.Add(p.delay), buf: bp, n: n}
			} else {
				bufPool.Put(bp)
			}
			if err != nil {
				return
			}
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	failed := false
	for c := range q {
		if !failed {
			if d := time.Until(c.due); d > 0 {
				timer.Reset(d)
				<-timer.C
			}
			_, err := dst.Write((*c.buf)[:c.n])
			failed = err != nil
		}
		bufPool.Put(c.buf)
	}
	if failed {
		// The other side is gone: stop the sender too.
		src.Close()
		return
	}
	halfClose(dst)
}

// splice copies src to dst in the kernel (io.Copy between TCP connections uses splice(2) on
// Linux), counting a chunk at a time, then half-closes dst.
func (p *Proxy) splice(dst, src net.Conn, count *atomic.Int64) {
	for {
		n, err := io.CopyN(dst, src, 256<<10)
		count.Add(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			// Either side failed: end both directions.
			src.Close()
			dst.Close()
			return
		}
	}
	halfClose(dst)
}

// halfClose ends the writing side of c (the other end reads EOF and may still answer), or
// closes it when it cannot be half-closed.
func halfClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		c.Close()
	}
}
