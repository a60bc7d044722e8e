package graphserver

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-os/strata/internal/graph"
)

// scoped is the graph of one stream in one scope (architecture, payload scheme) and the answers
// given from it. A fleet polling one stream maps onto a handful of distinct answers: what
// differs between two nodes of a scope is only which rollouts are hidden from them, so an
// answer is kept per set of hidden rollouts, encoded once, and gzip-compressed once. The cache
// lives as long as the inputs it was built from: a reload builds new streams and drops it. A
// rollout's ramp moving on changes which set a node falls in, never what a set's answer holds.
type scoped struct {
	g        graph.Graph
	rollouts []int // indexes of the rollout nodes of g

	throttle atomic.Pointer[throttleAt]

	mu      sync.RWMutex
	answers map[string]*answer // key: hiddenKey
}

// throttleAt is the throttling of each rollout node (in the order of scoped.rollouts) at one
// second: Throttling has a resolution of seconds, so a second's requests share it.
type throttleAt struct {
	unix   int64
	values []float64
}

// answer is an encoded graph answer, as sent and gzip-compressed.
type answer struct {
	body, gz       []byte
	bodyLen, gzLen []string // Content-Length header values
}

// maxAnswers bounds the answers kept per scope; a full cache starts again. With n rollouts a
// scope has at most n+1 distinct answers at any moment (hidden sets are nested by wariness),
// so only a graph with very many concurrent rollouts, or a clock far off, comes near it.
const maxAnswers = 1024

func newScoped(g graph.Graph) *scoped {
	sc := &scoped{g: g, answers: map[string]*answer{}}
	for i, n := range g.Nodes {
		if n.Rollout() {
			sc.rollouts = append(sc.rollouts, i)
		}
	}
	return sc
}

// throttlingAt returns the throttling of every rollout node at now.
func (sc *scoped) throttlingAt(now time.Time) []float64 {
	sec := now.Unix()
	if t := sc.throttle.Load(); t != nil && t.unix == sec {
		return t.values
	}
	t := &throttleAt{unix: sec, values: make([]float64, len(sc.rollouts))}
	for k, i := range sc.rollouts {
		t.values[k] = graph.Throttling(sc.g.Nodes[i], now)
	}
	sc.throttle.Store(t)
	return t.values
}

// hiddenKey appends to buf a bit per rollout node, set when the node is hidden from a node of
// the given wariness at now: graph.Throttle's rule (Throttling has a resolution of seconds),
// without building the throttled graph.
func (sc *scoped) hiddenKey(buf []byte, wariness float64, now time.Time) []byte {
	th := sc.throttlingAt(now)
	for k := 0; k < len(th); k += 8 {
		var b byte
		for j := k; j < min(k+8, len(th)); j++ {
			if wariness > th[j] {
				b |= 1 << (j - k)
			}
		}
		buf = append(buf, b)
	}
	return buf
}

// answerFor returns the answer for a node of the given wariness at now, encoding it if no
// node of the same hidden set asked before.
func (sc *scoped) answerFor(wariness float64, now time.Time) (*answer, error) {
	var kb [16]byte
	key := sc.hiddenKey(kb[:0], wariness, now)
	sc.mu.RLock()
	a := sc.answers[string(key)]
	sc.mu.RUnlock()
	if a != nil {
		return a, nil
	}
	tg, _ := graph.Throttle(sc.g, wariness, now)
	a, err := encodeAnswer(graph.FilterDeadends(tg))
	if err != nil {
		return nil, err
	}
	sc.mu.Lock()
	if len(sc.answers) >= maxAnswers {
		clear(sc.answers)
	}
	sc.answers[string(key)] = a
	sc.mu.Unlock()
	return a, nil
}

func encodeAnswer(g graph.Graph) (*answer, error) {
	body, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encoding the graph: %w", err)
	}
	var zb bytes.Buffer
	zw, err := gzip.NewWriterLevel(&zb, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("internal error: gzip level: %w", err)
	}
	zw.Write(body)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the graph: %w", err)
	}
	return &answer{body: body, gz: zb.Bytes(),
		bodyLen: []string{strconv.Itoa(len(body))}, gzLen: []string{strconv.Itoa(zb.Len())}}, nil
}

// Header values shared by every graph answer; net/http only reads them.
var (
	hdrJSON     = []string{"application/json"}
	hdrNoStore  = []string{"no-store"}
	hdrGzip     = []string{"gzip"}
	hdrVaryAcce = []string{"Accept-Encoding"}
)

// write sends the answer, gzip-compressed when the request accepts it.
func (a *answer) write(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Vary"] = hdrVaryAcce
	body, n := a.body, a.bodyLen
	if acceptsGzip(r.Header["Accept-Encoding"]) {
		h["Content-Encoding"] = hdrGzip
		body, n = a.gz, a.gzLen
	}
	h["Content-Length"] = n
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// acceptsGzip reports whether Accept-Encoding values accept gzip: named with a non-zero
// quality, or covered by "*" with one and not refused by name (RFC 9110, section 12.5.3).
func acceptsGzip(values []string) bool {
	gz, star := -1.0, -1.0
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.TrimSpace(coding)
			q := 1.0
			if qv, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
				if f, err := strconv.ParseFloat(strings.TrimSpace(qv), 64); err == nil {
					q = f
				}
			}
			switch {
			case strings.EqualFold(coding, "gzip"):
				gz = q
			case coding == "*":
				star = q
			}
		}
	}
	if gz >= 0 {
		return gz > 0
	}
	return star > 0
}
