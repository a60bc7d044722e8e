package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// cell is the measurement of one op by one tool on one corpus in one mode.
type cell struct {
	Corpus string `json:"corpus"`
	Mode   string `json:"mode"`
	Op     string `json:"op"`
	Tool   string `json:"tool"`
	// Median is the median of each metric over Samples (taken separately).
	Median  sample   `json:"median"`
	Samples []sample `json:"samples"`
	// Result is what the run produced that both tools must agree on (commit checksum, ...).
	Result string `json:"result,omitempty"`
	Failed bool   `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
	// Ratio is ostree's median wall time over strata's, set on the strata cell of a pair.
	Ratio float64 `json:"ostree_over_strata_wall,omitempty"`
	// RatioRange is the lowest and the highest ratio of one round's pair of runs (each tool's
	// run i, made one after the other), set with Ratio when both tools ran at least twice:
	// how far the machine's speed moved during the measurement.
	RatioRange *[2]float64 `json:"ostree_over_strata_wall_range,omitempty"`
	// Same tells whether strata and ostree got the same Result: "yes", "NO" or "" (n/a).
	Same string `json:"same_result,omitempty"`
}

// median returns the per-metric median of samples (the mean of the middle two for even n).
func median(samples []sample) sample {
	if len(samples) == 0 {
		return sample{}
	}
	med := func(get func(sample) int64) int64 {
		v := make([]int64, len(samples))
		for i, s := range samples {
			v[i] = get(s)
		}
		slices.Sort(v)
		n := len(v)
		if n%2 == 1 {
			return v[n/2]
		}
		return (v[n/2-1] + v[n/2]) / 2
	}
	return sample{
		Wall:   time.Duration(med(func(s sample) int64 { return int64(s.Wall) })),
		User:   time.Duration(med(func(s sample) int64 { return int64(s.User) })),
		Sys:    time.Duration(med(func(s sample) int64 { return int64(s.Sys) })),
		MaxRSS: med(func(s sample) int64 { return s.MaxRSS }),
		Bytes:  med(func(s sample) int64 { return s.Bytes }),
	}
}

// compare fills Ratio and Same for every strata/ostree pair of cells.
func compare(cells []cell) {
	type key struct{ corpus, mode, op string }
	byKey := map[key]map[string]*cell{}
	for i := range cells {
		c := &cells[i]
		k := key{c.Corpus, c.Mode, c.Op}
		if byKey[k] == nil {
			byKey[k] = map[string]*cell{}
		}
		byKey[k][c.Tool] = c
	}
	for _, pair := range byKey {
		s, o := pair["strata"], pair["ostree"]
		if s == nil || o == nil || s.Failed || o.Failed {
			continue
		}
		if s.Median.Wall > 0 {
			s.Ratio = float64(o.Median.Wall) / float64(s.Median.Wall)
			s.RatioRange = pairRange(s.Samples, o.Samples)
		}
		if s.Result != "" || o.Result != "" {
			same := "NO"
			if s.Result == o.Result {
				same = "yes"
			}
			s.Same, o.Same = same, same
		}
	}
}

// pairRange returns the lowest and highest ratio of ostree's run i over strata's run i, or nil
// with fewer than two pairs.
func pairRange(strata, ostree []sample) *[2]float64 {
	n := min(len(strata), len(ostree))
	if n < 2 {
		return nil
	}
	var r *[2]float64
	for i := range n {
		if strata[i].Wall <= 0 {
			return nil
		}
		v := float64(ostree[i].Wall) / float64(strata[i].Wall)
		if r == nil {
			r = &[2]float64{v, v}
		}
		r[0], r[1] = min(r[0], v), max(r[1], v)
	}
	return r
}

// renderTable writes the cells of one corpus and mode as a Markdown table.
func renderTable(w io.Writer, cells []cell) {
	rows := [][]string{{"operation", "tool", "wall", "CPU (user+sys)", "peak RSS", "ostree/strata (wall)", "result", "same"}}
	// A "transferred" column only when some op counted network bytes (the pull ops).
	transferred := slices.ContainsFunc(cells, func(c cell) bool { return c.Median.Bytes > 0 })
	if transferred {
		rows[0] = append(rows[0], "transferred")
	}
	for _, c := range cells {
		row := []string{c.Op, c.Tool, "FAIL", "", "", "", cellText(abbrev(c.Error, 60)), c.Same}
		if !c.Failed {
			row = []string{c.Op, c.Tool, fmtDuration(c.Median.Wall), fmtDuration(c.Median.CPU()),
				fmtBytes(c.Median.MaxRSS), fmtRatio(c.Ratio, c.RatioRange), fmtResult(c.Result), c.Same}
		}
		if transferred {
			row = append(row, "")
			if !c.Failed && c.Median.Bytes > 0 {
				row[len(row)-1] = fmtTransferred(c.Median.Bytes)
			}
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, v := range r {
			widths[i] = max(widths[i], len([]rune(v)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, v := range r {
			pad := widths[i] - len([]rune(v))
			if i >= 2 && i <= 5 || i == 8 { // numbers: right-aligned
				fmt.Fprintf(&b, " %s%s |", strings.Repeat(" ", pad), v)
			} else {
				fmt.Fprintf(&b, " %s%s |", v, strings.Repeat(" ", pad))
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(rows[0])
	sep := make([]string, len(widths))
	for i, n := range widths {
		if i >= 2 && i <= 5 || i == 8 {
			sep[i] = strings.Repeat("-", n-1) + ":"
		} else {
			sep[i] = strings.Repeat("-", n)
		}
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
}

// fmtResult shortens commit checksums, alone or in a list (CHECKSUM.SERIAL ...), for the
// table; the JSON keeps them whole.
func fmtResult(r string) string {
	return longHexRE.ReplaceAllStringFunc(r, func(c string) string { return c[:12] })
}

var longHexRE = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

func fmtDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
}

func fmtBytes(n int64) string {
	const mib = 1 << 20
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/mib)
}

// fmtRatio formats a ratio, with the range of its run pairs when there is one.
func fmtRatio(r float64, pairs *[2]float64) string {
	if r == 0 {
		return ""
	}
	if pairs == nil {
		return fmt.Sprintf("%.2f×", r)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", r, pairs[0], pairs[1])
}

// cellText keeps free text from breaking a Markdown table row.
func cellText(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
