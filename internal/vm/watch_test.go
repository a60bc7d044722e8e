package vm

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseMarker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line, name, value string
		ok                bool
	}{
		{"STRATA-MARK up", "up", "", true},
		{"STRATA-MARK done 3 0", "done", "3 0", true},
		{"STRATA-MARK  spaced   out ", "spaced", "out", true},
		{"STRATA-MARK ", "", "", false},
		{"BOOT-OK", "", "", false},
		{"prefix STRATA-MARK up", "", "", false},
	} {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel()
			name, value, ok := parseMarker(tc.line)
			if name != tc.name || value != tc.value || ok != tc.ok {
				t.Errorf("parseMarker(%q) = %q, %q, %v, want %q, %q, %v", tc.line, name, value, ok, tc.name, tc.value, tc.ok)
			}
		})
	}
}

func TestScanner(t *testing.T) {
	t.Parallel()
	type chunk struct {
		console, markers string
		at               time.Duration
		final            bool
	}
	s := time.Second
	for _, tc := range []struct {
		name       string
		chunks     []chunk
		matched    string
		failure    string
		markers    []Marker
		milestones []Milestone
	}{
		{
			name: "marker split across reads",
			chunks: []chunk{
				{console: "BdsDxe: starting Boot0001\r\n[ 0.0] Linux vers", markers: "STRATA-MA", at: 1 * s},
				{console: "ion 6.1.0\r\n", markers: "RK up\r\n", at: 2 * s},
			},
			matched: "STRATA-MARK up",
			markers: []Marker{{Name: "up", At: 2 * s}},
			milestones: []Milestone{
				{Pattern: `BdsDxe: starting`, Line: "BdsDxe: starting Boot0001", At: 1 * s},
				{Pattern: `Linux version`, Line: "[ 0.0] Linux version 6.1.0", At: 2 * s},
			},
		},
		{
			name: "milestone recorded once, markers every time",
			chunks: []chunk{
				{console: "Linux version a\n", markers: "STRATA-MARK boot 1\n", at: 1 * s},
				{console: "Linux version b\n", markers: "STRATA-MARK boot 2\n", at: 3 * s},
			},
			markers:    []Marker{{Name: "boot", Value: "1", At: 1 * s}, {Name: "boot", Value: "2", At: 3 * s}},
			milestones: []Milestone{{Pattern: `Linux version`, Line: "Linux version a", At: 1 * s}},
		},
		{
			name:    "failure on the console",
			chunks:  []chunk{{console: "[initrd] FATAL: no root\n", at: 5 * s}},
			failure: "[initrd] FATAL: no root",
		},
		{
			name: "failure after success is shutdown noise",
			chunks: []chunk{
				{markers: "STRATA-MARK up\n", at: 1 * s},
				{console: "Kernel panic - not syncing\n", at: 2 * s},
			},
			matched: "STRATA-MARK up",
			markers: []Marker{{Name: "up", At: 1 * s}},
		},
		{
			name:    "unterminated last line counts at the end",
			chunks:  []chunk{{markers: "STRATA-MARK up", at: 1 * s}, {at: 2 * s, final: true}},
			matched: "STRATA-MARK up",
			markers: []Marker{{Name: "up", At: 2 * s}},
		},
		{
			name:   "unterminated line waits",
			chunks: []chunk{{markers: "STRATA-MARK up", at: 1 * s}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc, err := newScanner([]string{`^STRATA-MARK up$`}, DefaultFailures, DefaultMilestones)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.chunks {
				sc.feedConsole([]byte(c.console), c.at, c.final)
				sc.feedMarkers([]byte(c.markers), c.at, c.final)
			}
			if sc.Matched != tc.matched || sc.Failure != tc.failure {
				t.Errorf("matched, failure = %q, %q, want %q, %q", sc.Matched, sc.Failure, tc.matched, tc.failure)
			}
			if diff := cmp.Diff(tc.markers, sc.Markers); diff != "" {
				t.Errorf("markers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.milestones, sc.Milestones); diff != "" {
				t.Errorf("milestones (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewScannerBadPattern(t *testing.T) {
	t.Parallel()
	if _, err := newScanner([]string{"("}, nil, nil); err == nil {
		t.Errorf("newScanner([\"(\"]) = nil error, want a compile error")
	}
}
