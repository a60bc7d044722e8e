package pulltest

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Fault answers a request instead of the file server. Name shows in the request log.
type Fault struct {
	Name  string
	Serve func(c *Call)
}

// Tamper serves the real file changed by fn (with a matching Content-Length).
func Tamper(fn func(body []byte) []byte) Fault {
	return Fault{Name: "tamper", Serve: func(c *Call) {
		code, body := c.Real()
		if code != http.StatusOK {
			c.Serve()
			return
		}
		writeBody(c, fn(append([]byte(nil), body...)))
	}}
}

// FlipByte serves the real file with the bits of byte i inverted; a negative i counts from the
// end (-1 is the last byte).
func FlipByte(i int) Fault {
	f := Tamper(func(b []byte) []byte {
		j := i
		if j < 0 {
			j += len(b)
		}
		if j >= 0 && j < len(b) {
			b[j] ^= 0xff
		}
		return b
	})
	f.Name = "flip-byte"
	return f
}

// Body serves b with status 200 instead of the file.
func Body(b []byte) Fault {
	return Fault{Name: "body", Serve: func(c *Call) { writeBody(c, b) }}
}

func writeBody(c *Call, b []byte) {
	c.W.Header().Set("Content-Type", "application/octet-stream")
	c.W.Header().Set("Content-Length", strconv.Itoa(len(b)))
	c.W.WriteHeader(http.StatusOK)
	_, _ = c.W.Write(b)
}

// Status answers with an error status and a short text body.
func Status(code int) Fault {
	return Fault{Name: "status " + strconv.Itoa(code), Serve: func(c *Call) {
		http.Error(c.W, http.StatusText(code), code)
	}}
}

// FailFirst answers the first n requests it gets with status code, then serves the file.
func FailFirst(n, code int) Fault {
	return Fault{Name: fmt.Sprintf("fail first %d with %d", n, code), Serve: func(c *Call) {
		if c.N <= n {
			http.Error(c.W, http.StatusText(code), code)
			return
		}
		c.Serve()
	}}
}

// Truncate serves the first n bytes of the file with Content-Length n: a short but
// well-framed response, which only the object's checksum or structure can give away.
func Truncate(n int) Fault {
	f := Tamper(func(b []byte) []byte { return b[:min(n, len(b))] })
	f.Name = "truncate"
	return f
}

// ContentLength serves the whole file but declares Content-Length len+delta. With delta > 0
// the connection closes before the declared length (a cut-off body); with delta < 0 the
// declared length is short and the rest of the bytes trail behind it on the connection.
func ContentLength(delta int64) Fault {
	return Fault{Name: fmt.Sprintf("content-length %+d", delta), Serve: func(c *Call) {
		code, body := c.Real()
		if code != http.StatusOK {
			c.Serve()
			return
		}
		c.raw(http.StatusOK, int64(len(body))+delta, func(w *bufio.Writer) error {
			_, err := w.Write(body)
			return err
		})
	}}
}

// CutOff declares the real Content-Length, sends the first n bytes of the file and closes the
// connection.
func CutOff(n int) Fault {
	return Fault{Name: fmt.Sprintf("cut off after %d", n), Serve: func(c *Call) {
		code, body := c.Real()
		if code != http.StatusOK {
			c.Serve()
			return
		}
		c.raw(http.StatusOK, int64(len(body)), func(w *bufio.Writer) error {
			_, err := w.Write(body[:min(n, len(body))])
			return err
		})
	}}
}

// filler is what endless and huge bodies are made of.
var filler = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

// Endless sends status 200 and no Content-Length, then body bytes until the client goes away,
// the test ends or limit bytes were sent.
func Endless(limit int64) Fault {
	return Fault{Name: "endless", Serve: func(c *Call) {
		c.W.Header().Set("Content-Type", "application/octet-stream")
		c.W.WriteHeader(http.StatusOK)
		stream(c, limit)
	}}
}

// Huge declares Content-Length size and sends that many bytes (unless the client goes away or
// the test ends first).
func Huge(size int64) Fault {
	return Fault{Name: "huge", Serve: func(c *Call) {
		c.W.Header().Set("Content-Type", "application/octet-stream")
		c.W.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		c.W.WriteHeader(http.StatusOK)
		stream(c, size)
	}}
}

func stream(c *Call, limit int64) {
	gone := c.Gone()
	for sent := int64(0); sent < limit; {
		select {
		case <-gone:
			return
		default:
		}
		n, err := c.W.Write(filler[:min(int64(len(filler)), limit-sent)])
		sent += int64(n)
		if err != nil {
			return
		}
	}
}

// Stall declares the real Content-Length, sends the first n bytes of the file, then blocks
// until the client goes away or the test ends.
func Stall(n int) Fault {
	return Fault{Name: fmt.Sprintf("stall after %d", n), Serve: func(c *Call) {
		code, body := c.Real()
		if code != http.StatusOK {
			c.Serve()
			return
		}
		c.W.Header().Set("Content-Type", "application/octet-stream")
		c.W.Header().Set("Content-Length", strconv.Itoa(len(body)))
		c.W.WriteHeader(http.StatusOK)
		_, _ = c.W.Write(body[:min(n, len(body))])
		_ = http.NewResponseController(c.W).Flush()
		<-c.Gone()
	}}
}

// NoHeaders accepts the request and never answers it: it blocks until the client goes away
// or the test ends.
func NoHeaders() Fault {
	return Fault{Name: "no headers", Serve: func(c *Call) { <-c.Gone() }}
}

// Drip sends the real file with its Content-Length, chunk bytes per tick of every, until the
// file is sent, the client goes away or the test ends.
func Drip(every time.Duration, chunk int) Fault {
	return Fault{Name: "drip", Serve: func(c *Call) {
		code, body := c.Real()
		if code != http.StatusOK {
			c.Serve()
			return
		}
		c.W.Header().Set("Content-Type", "application/octet-stream")
		c.W.Header().Set("Content-Length", strconv.Itoa(len(body)))
		c.W.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(c.W)
		_ = rc.Flush()
		tick := time.NewTicker(every)
		defer tick.Stop()
		gone := c.Gone()
		for len(body) > 0 {
			select {
			case <-gone:
				return
			case <-tick.C:
			}
			n := min(chunk, len(body))
			if _, err := c.W.Write(body[:n]); err != nil {
				return
			}
			_ = rc.Flush()
			body = body[n:]
		}
	}}
}

// Redirect answers 302 Found with Location /to (a path of the same server). Redirect to the
// request's own path, or two redirects pointing at each other, make a loop.
func Redirect(to string) Fault {
	return Fault{Name: "redirect to " + to, Serve: func(c *Call) {
		http.Redirect(c.W, c.R, "/"+to, http.StatusFound)
	}}
}
