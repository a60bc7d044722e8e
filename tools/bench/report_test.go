package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	sumA = "197925d70700b6fdf2ab8a1bbaf8e5b7d7e1a3c0b3c8a1d1e5f0a9b8c7d6e5f4"
	sumB = "c34bd5ccd05c0000000000000000000000000000000000000000000000000000"
)

func TestMedian(t *testing.T) {
	t.Parallel()
	s := func(wall, user, sys time.Duration, rss int64) sample {
		return sample{Wall: wall, User: user, Sys: sys, MaxRSS: rss}
	}
	tests := []struct {
		name string
		in   []sample
		want sample
	}{
		{name: "empty", in: nil, want: sample{}},
		{name: "one", in: []sample{s(3, 2, 1, 9)}, want: s(3, 2, 1, 9)},
		{name: "odd takes the middle of each metric", in: []sample{s(5, 1, 9, 3), s(1, 3, 7, 1), s(3, 2, 8, 2)}, want: s(3, 2, 8, 2)},
		{name: "even averages the middle two", in: []sample{s(4, 0, 0, 10), s(1, 0, 0, 40), s(2, 0, 0, 20), s(9, 0, 0, 30)}, want: s(3, 0, 0, 25)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	cells := []cell{
		{Corpus: "c", Mode: "archive", Op: "commit", Tool: "strata", Median: sample{Wall: 2 * time.Second}, Result: sumA},
		{Corpus: "c", Mode: "archive", Op: "commit", Tool: "ostree", Median: sample{Wall: 5 * time.Second}, Result: sumA},
		{Corpus: "c", Mode: "bare-user", Op: "commit", Tool: "strata", Median: sample{Wall: 4 * time.Second}, Result: sumA},
		{Corpus: "c", Mode: "bare-user", Op: "commit", Tool: "ostree", Median: sample{Wall: 2 * time.Second}, Result: sumB},
		{Corpus: "c", Mode: "archive", Op: "fsck", Tool: "strata", Failed: true},
		{Corpus: "c", Mode: "archive", Op: "fsck", Tool: "ostree", Median: sample{Wall: time.Second}},
		{Corpus: "c", Mode: "archive", Op: "checkout", Tool: "ostree", Median: sample{Wall: time.Second}, Result: "3 entries"},
	}
	compare(cells)
	type got struct {
		Ratio float64
		Same  string
	}
	want := []got{{2.5, "yes"}, {0, "yes"}, {0.5, "NO"}, {0, "NO"}, {0, ""}, {0, ""}, {0, ""}}
	var gots []got
	for _, c := range cells {
		gots = append(gots, got{c.Ratio, c.Same})
	}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("compare() mismatch (-want +got):\n%s", diff)
	}
}

func TestCompareRunPairs(t *testing.T) {
	t.Parallel()
	walls := func(secs ...float64) []sample {
		var s []sample
		for _, v := range secs {
			s = append(s, sample{Wall: time.Duration(v * float64(time.Second))})
		}
		return s
	}
	cells := []cell{
		{Op: "pull", Tool: "strata", Samples: walls(4, 5, 4.5), Median: sample{Wall: 4500 * time.Millisecond}},
		{Op: "pull", Tool: "ostree", Samples: walls(9, 9, 9.9), Median: sample{Wall: 9 * time.Second}},
		{Op: "fsck", Tool: "strata", Samples: walls(1), Median: sample{Wall: time.Second}},
		{Op: "fsck", Tool: "ostree", Samples: walls(2), Median: sample{Wall: 2 * time.Second}},
	}
	compare(cells)
	if r := cells[0].RatioRange; cells[0].Ratio != 2 || r == nil || r[0] != 1.8 || r[1] != 2.25 {
		t.Errorf("pull: ratio %v, run pairs %v, want 2 and [1.8 2.25]", cells[0].Ratio, r)
	}
	if cells[2].RatioRange != nil {
		t.Errorf("fsck, one run each: run pairs %v, want none", *cells[2].RatioRange)
	}
}

func TestRenderTable(t *testing.T) {
	t.Parallel()
	cells := []cell{
		{Op: "commit", Tool: "strata", Median: sample{Wall: 1500 * time.Millisecond, User: time.Second, Sys: 200 * time.Millisecond, MaxRSS: 50 << 20}, Result: sumA, Ratio: 3.21, Same: "yes"},
		{Op: "commit", Tool: "ostree", Median: sample{Wall: 12345 * time.Millisecond, User: 3 * time.Second, Sys: time.Second, MaxRSS: 3 << 30}, Result: sumA, Same: "yes"},
		{Op: "fsck", Tool: "strata", Failed: true, Error: "exit status 1: bad | object"},
		{Op: "fsck", Tool: "ostree", Median: sample{Wall: 42 * time.Millisecond, MaxRSS: 1 << 20}},
	}
	var b bytes.Buffer
	renderTable(&b, cells)
	want := strings.TrimLeft(`
| operation | tool   |   wall | CPU (user+sys) | peak RSS | ostree/strata (wall) | result                       | same |
| --------- | ------ | -----: | -------------: | -------: | -------------------: | ---------------------------- | ---- |
| commit    | strata | 1.50 s |         1.20 s | 50.0 MiB |                3.21× | 197925d70700                 | yes  |
| commit    | ostree | 12.3 s |         4.00 s | 3.00 GiB |                      | 197925d70700                 | yes  |
| fsck      | strata |   FAIL |                |          |                      | exit status 1: bad \| object |      |
| fsck      | ostree |  42 ms |           0 ms |  1.0 MiB |                      |                              |      |
`, "\n")
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("renderTable() mismatch (-want +got):\n%s", diff)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, got, want string
	}{
		{"ms", fmtDuration(999 * time.Millisecond), "999 ms"},
		{"seconds", fmtDuration(1234 * time.Millisecond), "1.23 s"},
		{"tens of seconds", fmtDuration(98765 * time.Millisecond), "98.8 s"},
		{"MiB", fmtBytes(1536 << 10), "1.5 MiB"},
		{"GiB", fmtBytes(5 << 29), "2.50 GiB"},
		{"no ratio", fmtRatio(0, nil), ""},
		{"ratio", fmtRatio(1.005, nil), "1.00×"},
		{"ratio and its run pairs", fmtRatio(1.9, &[2]float64{1.834, 2.05}), "1.90× (1.83–2.05)"},
		{"checksum shortened", fmtResult(sumA), "197925d70700"},
		{"other result kept", fmtResult("12 entries"), "12 entries"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
