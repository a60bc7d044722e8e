// Package schedule is a weekly calendar of maintenance windows, as Zincati's periodic strategy
// writes them: each window recurs on some weekdays from a start time for a length in minutes, all
// in one time zone. Windows may overlap and may run past midnight or the end of the week. The
// update agent finalizes only inside a window; the lock server grants slots only inside its
// group's windows.
//
// Layer L1 (formats): standard library and internal/errdefs only.
package schedule

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// Window is one recurring window, in the configuration's form.
type Window struct {
	Days          []string `toml:"days" json:"days"`
	StartTime     string   `toml:"start_time" json:"start_time"`
	LengthMinutes uint64   `toml:"length_minutes" json:"length_minutes"`
}

const week = 7 * 24 * 60 // minutes

// interval is [start, end) in minutes since Monday 00:00, end <= week.
type interval struct{ start, end int }

// Calendar is a set of windows in one time zone. The zero Calendar has no windows (never open).
type Calendar struct {
	loc       *time.Location
	intervals []interval
}

var dayIndex = map[string]int{
	"mon": 0, "monday": 0, "tue": 1, "tuesday": 1, "wed": 2, "wednesday": 2, "thu": 3, "thursday": 3,
	"fri": 4, "friday": 4, "sat": 5, "saturday": 5, "sun": 6, "sunday": 6,
}

// New builds a calendar. zone is an IANA name, "UTC" or "" (UTC), or "localtime" (the system's
// zone, UTC when it has none). Every problem is reported with the window's index.
func New(zone string, windows []Window) (Calendar, error) {
	loc, err := location(zone)
	if err != nil {
		return Calendar{}, err
	}
	c := Calendar{loc: loc}
	for i, w := range windows {
		if len(w.Days) == 0 {
			return Calendar{}, fmt.Errorf("window[%d]: no days: %w", i, errdefs.ErrInvalid)
		}
		if w.LengthMinutes == 0 {
			return Calendar{}, fmt.Errorf("window[%d]: length_minutes must be positive: %w", i, errdefs.ErrInvalid)
		}
		startMin, err := parseClock(w.StartTime)
		if err != nil {
			return Calendar{}, fmt.Errorf("window[%d]: %v: %w", i, err, errdefs.ErrInvalid)
		}
		length := int(min(w.LengthMinutes, week))
		for _, d := range w.Days {
			di, ok := dayIndex[strings.ToLower(d)]
			if !ok {
				return Calendar{}, fmt.Errorf("window[%d]: unknown day %q (Mon..Sun or Monday..Sunday): %w", i, d, errdefs.ErrInvalid)
			}
			start := di*24*60 + startMin
			end := start + length
			if end <= week {
				c.intervals = append(c.intervals, interval{start, end})
			} else { // runs past the end of the week: split
				c.intervals = append(c.intervals, interval{start, week}, interval{0, end - week})
			}
		}
	}
	sort.Slice(c.intervals, func(a, b int) bool { return c.intervals[a].start < c.intervals[b].start })
	return c, nil
}

func location(zone string) (*time.Location, error) {
	switch zone {
	case "", "UTC":
		return time.UTC, nil
	case "localtime":
		return time.Local, nil
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %v: %w", zone, err, errdefs.ErrInvalid)
	}
	return loc, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
		return 0, fmt.Errorf("start_time %q is not HH:MM (24 h)", s)
	}
	return hh*60 + mm, nil
}

// Empty reports whether the calendar has no window.
func (c Calendar) Empty() bool { return len(c.intervals) == 0 }

// Length returns the total minutes per week inside some window (overlaps counted once).
func (c Calendar) Length() int {
	total, end := 0, 0
	for _, iv := range c.intervals {
		if iv.end <= end {
			continue
		}
		total += iv.end - max(iv.start, end)
		end = iv.end
	}
	return total
}

// minuteOfWeek is t's minute since Monday 00:00 in the calendar's zone. Wall-clock times are
// obeyed across daylight saving changes: a window at 02:30 on a day without 02:30 does not occur.
func (c Calendar) minuteOfWeek(t time.Time) int {
	t = t.In(c.loc)
	wd := (int(t.Weekday()) + 6) % 7 // Monday = 0
	return wd*24*60 + t.Hour()*60 + t.Minute()
}

// Contains reports whether t falls inside a window.
func (c Calendar) Contains(t time.Time) bool {
	m := c.minuteOfWeek(t)
	for _, iv := range c.intervals {
		if iv.start <= m && m < iv.end {
			return true
		}
	}
	return false
}

// Next returns the start of the next window at or after t (t itself when it is inside one), and
// false when the calendar is empty.
func (c Calendar) Next(t time.Time) (time.Time, bool) {
	if c.Empty() {
		return time.Time{}, false
	}
	if c.Contains(t) {
		return t, true
	}
	m := c.minuteOfWeek(t)
	best := week + 1
	for _, iv := range c.intervals {
		d := iv.start - m
		if d <= 0 {
			d += week
		}
		best = min(best, d)
	}
	base := t.In(c.loc).Truncate(time.Minute)
	return base.Add(time.Duration(best) * time.Minute), true
}
