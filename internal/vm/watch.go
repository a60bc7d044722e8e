package vm

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// MarkerPrefix starts a marker line on the marker port: "STRATA-MARK <name> [value]".
const MarkerPrefix = "STRATA-MARK "

// Marker is one marker line the guest wrote.
type Marker struct {
	Name  string        `json:"name"`
	Value string        `json:"value,omitempty"`
	At    time.Duration `json:"at_ns"` // since QEMU started, at 100 ms resolution
}

// Milestone is the first appearance of a pattern.
type Milestone struct {
	Pattern string        `json:"pattern"`
	Line    string        `json:"line"`
	At      time.Duration `json:"at_ns"`
}

// parseMarker reads a marker line; ok is false for other lines.
func parseMarker(line string) (name, value string, ok bool) {
	rest, ok := strings.CutPrefix(line, MarkerPrefix)
	if !ok {
		return "", "", false
	}
	name, value, _ = strings.Cut(strings.TrimSpace(rest), " ")
	return name, strings.TrimSpace(value), name != ""
}

// stream splits appended bytes into lines.
type stream struct{ partial []byte }

// feed appends data and returns the complete lines, without CR/LF; at EOF (final) the
// unterminated rest is a line too.
func (s *stream) feed(data []byte, final bool) []string {
	s.partial = append(s.partial, data...)
	var lines []string
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, strings.TrimRight(string(s.partial[:i]), "\r"))
		s.partial = s.partial[i+1:]
	}
	if final && len(s.partial) > 0 {
		lines = append(lines, strings.TrimRight(string(s.partial), "\r"))
		s.partial = nil
	}
	return lines
}

// scanner holds the watch state over the console and marker streams. It is pure: callers feed it
// bytes with the time they were read.
type scanner struct {
	until, failures, milestones []*regexp.Regexp

	console, markerPort stream
	seen                []bool // per milestone

	Milestones []Milestone
	Markers    []Marker
	Matched    string // the marker-port line that matched Until
	MatchedAt  time.Duration
	Failure    string // the console line that matched Failures
}

func compileAll(what string, pats []string) ([]*regexp.Regexp, error) {
	res := make([]*regexp.Regexp, 0, len(pats))
	for _, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("compiling %s pattern %q: %w", what, p, err)
		}
		res = append(res, re)
	}
	return res, nil
}

func newScanner(until, failures, milestones []string) (*scanner, error) {
	s := &scanner{}
	var err error
	if s.until, err = compileAll("marker", until); err != nil {
		return nil, err
	}
	if s.failures, err = compileAll("failure", failures); err != nil {
		return nil, err
	}
	if s.milestones, err = compileAll("milestone", milestones); err != nil {
		return nil, err
	}
	s.seen = make([]bool, len(milestones))
	return s, nil
}

func (s *scanner) milestone(line string, at time.Duration) {
	for i, re := range s.milestones {
		if !s.seen[i] && re.MatchString(line) {
			s.seen[i] = true
			s.Milestones = append(s.Milestones, Milestone{Pattern: re.String(), Line: line, At: at})
		}
	}
}

// feedConsole scans console bytes.
func (s *scanner) feedConsole(data []byte, at time.Duration, final bool) {
	for _, line := range s.console.feed(data, final) {
		s.milestone(line, at)
		if s.Failure != "" || s.Matched != "" {
			continue // a failure after success (shutdown noise) does not undo it
		}
		for _, re := range s.failures {
			if re.MatchString(line) {
				s.Failure = line
				break
			}
		}
	}
}

// feedMarkers scans marker-port bytes.
func (s *scanner) feedMarkers(data []byte, at time.Duration, final bool) {
	for _, line := range s.markerPort.feed(data, final) {
		s.milestone(line, at)
		if name, value, ok := parseMarker(line); ok {
			s.Markers = append(s.Markers, Marker{Name: name, Value: value, At: at})
		}
		if s.Matched != "" || s.Failure != "" {
			continue
		}
		for _, re := range s.until {
			if re.MatchString(line) {
				s.Matched, s.MatchedAt = line, at
				break
			}
		}
	}
}
