package provconfig

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/coreos/vcontext/report"
)

// Severity says whether a finding makes a config unusable.
type Severity string

// Severities of findings.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Finding is one problem found in a config, addressed by its JSON path
// ("$.storage.files.0.path") and, when known, the line and column of the input.
type Finding struct {
	Severity Severity `json:"severity"`
	Path     string   `json:"path"`
	Line     int      `json:"line,omitempty"`
	Column   int      `json:"column,omitempty"`
	Message  string   `json:"message"`
}

func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s at %s", f.Severity, f.Path)
	if f.Line > 0 {
		fmt.Fprintf(&b, ", line %d col %d", f.Line, f.Column)
	}
	fmt.Fprintf(&b, ": %s", f.Message)
	return b.String()
}

// Report holds every finding of one parse or translation, in the order found.
type Report struct {
	Findings []Finding `json:"findings"`
}

// IsFatal reports whether the report holds an error.
func (r Report) IsFatal() bool {
	for _, f := range r.Findings {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}

// String renders one finding per line.
func (r Report) String() string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func (r *Report) add(sev Severity, path []any, line, col int, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Path: jsonPath(path), Line: line, Column: col,
		Message: fmt.Sprintf(format, args...)})
}

// jsonPath renders a path the way Ignition's reports do: $.storage.files.0.path.
func jsonPath(path []any) string {
	var b strings.Builder
	b.WriteString("$")
	for _, p := range path {
		b.WriteByte('.')
		switch v := p.(type) {
		case string:
			b.WriteString(v)
		case int:
			b.WriteString(strconv.Itoa(v))
		default:
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

// fromIgnition converts Ignition's report. Info and deprecation entries become warnings.
func fromIgnition(rpt report.Report, locate func(path []any) (line, col int)) Report {
	var out Report
	for _, e := range rpt.Entries {
		sev := SeverityWarning
		if e.Kind.IsFatal() {
			sev = SeverityError
		}
		f := Finding{Severity: sev, Path: jsonPath(e.Context.Path), Message: e.Message}
		if locate != nil {
			f.Line, f.Column = locate(e.Context.Path)
		} else if e.Marker.StartP != nil {
			f.Line, f.Column = int(e.Marker.StartP.Line), int(e.Marker.StartP.Column)
		}
		out.Findings = append(out.Findings, f)
	}
	return out
}
