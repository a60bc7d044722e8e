package schedule

import (
	"testing"
	"time"
)

func TestCalendar(t *testing.T) {
	t.Parallel()
	// 2026-12-07 is a Monday.
	at := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	c, err := New("UTC", []Window{
		{Days: []string{"Sat", "Sun"}, StartTime: "23:00", LengthMinutes: 120},
		{Days: []string{"Wednesday"}, StartTime: "23:30", LengthMinutes: 25},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		when string
		want bool
	}{
		{"2026-12-12 22:59", false}, // Sat before
		{"2026-12-12 23:00", true},
		{"2026-12-13 00:30", true},  // into Sunday
		{"2026-12-13 23:30", true},  // Sunday's window
		{"2026-12-14 00:59", true},  // wraps the end of the week into Monday
		{"2026-12-14 01:00", false}, // ends
		{"2026-12-09 23:54", true},
		{"2026-12-09 23:55", false},
	} {
		if got := c.Contains(at(tc.when)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.when, got, tc.want)
		}
	}
	if n, ok := c.Next(at("2026-12-07 12:00")); !ok || !n.Equal(at("2026-12-09 23:30")) {
		t.Errorf("Next(Mon noon) = %v, want Wed 23:30", n)
	}
	if got := c.Length(); got != 2*120+25 {
		t.Errorf("Length = %d, want 265", got)
	}
	// Time zones shift the windows.
	ny, err := New("America/New_York", []Window{{Days: []string{"mon"}, StartTime: "00:00", LengthMinutes: 60}})
	if err != nil {
		t.Fatal(err)
	}
	if !ny.Contains(at("2026-12-07 05:30")) || ny.Contains(at("2026-12-07 00:30")) {
		t.Error("a New York window of Monday 00:00-01:00 is not Monday 05:00-06:00 UTC")
	}
}

func TestCalendarErrors(t *testing.T) {
	t.Parallel()
	for name, w := range map[string]Window{
		"no days":     {StartTime: "10:00", LengthMinutes: 1},
		"bad day":     {Days: []string{"Caturday"}, StartTime: "10:00", LengthMinutes: 1},
		"bad time":    {Days: []string{"Mon"}, StartTime: "25:00", LengthMinutes: 1},
		"bad minutes": {Days: []string{"Mon"}, StartTime: "10:5", LengthMinutes: 1},
		"zero length": {Days: []string{"Mon"}, StartTime: "10:00"},
	} {
		if _, err := New("UTC", []Window{w}); err == nil {
			t.Errorf("New(%s) succeeded, want an error", name)
		}
	}
	if _, err := New("Mars/Olympus", nil); err == nil {
		t.Error("New with an unknown zone succeeded")
	}
}
