package provision

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// dbFile is one colon-separated account database of the tree (etc/passwd, etc/group,
// etc/shadow, etc/gshadow): its lines as fields, in order, so that rewriting it keeps every
// line it does not change byte for byte.
type dbFile struct {
	rel     string
	nfields int
	lines   [][]string
	exists  bool
	changed bool
	// mode, uid and gid of the existing file, kept when it is replaced.
	mode     uint32
	uid, gid int
}

func parseDB(rel string, nfields int, data []byte) *dbFile {
	f := &dbFile{rel: rel, nfields: nfields}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		f.lines = append(f.lines, strings.Split(line, ":"))
	}
	return f
}

func (f *dbFile) find(name string) []string {
	for _, l := range f.lines {
		if l[0] == name {
			return l
		}
	}
	return nil
}

// set replaces the entry of the same name, or appends it.
func (f *dbFile) set(fields []string) {
	f.changed = true
	for i, l := range f.lines {
		if l[0] == fields[0] {
			f.lines[i] = fields
			return
		}
	}
	f.lines = append(f.lines, fields)
}

func (f *dbFile) bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.lines {
		b.WriteString(strings.Join(l, ":"))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// field returns field i of an entry, "" when the line is short.
func field(l []string, i int) string {
	if i < len(l) {
		return l[i]
	}
	return ""
}

// pad extends an entry to n fields.
func pad(l []string, n int) []string {
	for len(l) < n {
		l = append(l, "")
	}
	return l
}

// accounts is the tree's account databases plus the shadow-utils settings that useradd and
// groupadd would read inside the tree (etc/login.defs, etc/default/useradd).
type accounts struct {
	passwd, group, shadow, gshadow *dbFile
	subuid, subgid                 *dbFile
	defs                           map[string]string
	useradd                        map[string]string
	today                          int64
	// homeIsVar is set when the tree's /home is a symlink to var/home.
	homeIsVar bool
}

func (a *accounts) files() []*dbFile {
	return []*dbFile{a.group, a.gshadow, a.passwd, a.shadow, a.subuid, a.subgid}
}

// parseSettings reads "KEY VALUE" (login.defs) or "KEY=VALUE" (default/useradd) lines.
func parseSettings(data []byte, sep string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var k, v string
		if sep == "=" {
			k, v, _ = strings.Cut(line, "=")
		} else {
			fs := strings.Fields(line)
			k = fs[0]
			if len(fs) > 1 {
				v = fs[1]
			}
		}
		m[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return m
}

func (a *accounts) num(key string, def int64) int64 {
	if v, ok := a.defs[key]; ok {
		if n, err := strconv.ParseInt(v, 0, 64); err == nil {
			return n
		}
	}
	return def
}

// userID returns the uid of a user name, or ok false.
func (a *accounts) userID(name string) (int, bool) {
	if l := a.passwd.find(name); l != nil {
		id, err := strconv.Atoi(field(l, 2))
		return id, err == nil
	}
	return 0, false
}

func (a *accounts) groupID(name string) (int, bool) {
	if l := a.group.find(name); l != nil {
		id, err := strconv.Atoi(field(l, 2))
		return id, err == nil
	}
	return 0, false
}

func usedIDs(f *dbFile, idx int) map[int64]bool {
	used := map[int64]bool{}
	for _, l := range f.lines {
		if n, err := strconv.ParseInt(field(l, idx), 10, 64); err == nil {
			used[n] = true
		}
	}
	return used
}

// newID picks a free id as shadow-utils does: for regular accounts one above the highest in
// [MIN, MAX] (the lowest free one once MAX is reached), for system accounts one below the
// lowest in [SYS_MIN, SYS_MAX] (the highest free one once SYS_MIN is reached). preferred, when free and in range, wins (a user private group
// gets its user's number).
func (a *accounts) newID(used map[int64]bool, kind string, system bool, preferred int64) (int64, error) {
	lo, hi := a.num(kind+"_MIN", 1000), a.num(kind+"_MAX", 60000)
	if system {
		lo, hi = a.num("SYS_"+kind+"_MIN", 101), a.num("SYS_"+kind+"_MAX", a.num(kind+"_MIN", 1000)-1)
	}
	if preferred >= 0 && !used[preferred] && preferred >= lo && preferred <= hi {
		return preferred, nil
	}
	if system {
		// Below the lowest system id in use, else the highest free one (shadow-utils'
		// find_new_uid/find_new_gid).
		lowest := hi + 1
		for id := range used {
			if id >= lo && id <= hi && id < lowest {
				lowest = id
			}
		}
		if lowest-1 >= lo && !used[lowest-1] {
			return lowest - 1, nil
		}
		for id := hi; id >= lo; id-- {
			if !used[id] {
				return id, nil
			}
		}
	} else {
		top := lo - 1
		for id := range used {
			if id >= lo && id <= hi && id > top {
				top = id
			}
		}
		if top < hi {
			return top + 1, nil
		}
		for id := lo; id <= hi; id++ {
			if !used[id] {
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("no free %s left in [%d, %d]: %w", strings.ToLower(kind), lo, hi, errdefs.ErrFailedPrecondition)
}

// addMember adds a user to a group's member list (group field 3, gshadow field 3).
func addMember(f *dbFile, group, user string, idx int) {
	l := f.find(group)
	if l == nil {
		return
	}
	l = pad(slices.Clone(l), idx+1)
	members := splitList(l[idx])
	if slices.Contains(members, user) {
		return
	}
	l[idx] = strings.Join(append(members, user), ",")
	f.set(l)
}

// removeMember drops a user from a group's member list.
func removeMember(f *dbFile, l []string, user string, idx int) {
	members := splitList(field(l, idx))
	if !slices.Contains(members, user) {
		return
	}
	l = pad(slices.Clone(l), idx+1)
	l[idx] = strings.Join(slices.DeleteFunc(members, func(m string) bool { return m == user }), ",")
	f.set(l)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// nextSubordinate returns the start of a free range of count ids after every range of a
// subuid/subgid file, at least SUB_x_MIN.
func (a *accounts) nextSubordinate(f *dbFile, kind string) (int64, int64) {
	count := a.num("SUB_"+kind+"_COUNT", 65536)
	start := a.num("SUB_"+kind+"_MIN", 100000)
	for _, l := range f.lines {
		s, err1 := strconv.ParseInt(field(l, 1), 10, 64)
		n, err2 := strconv.ParseInt(field(l, 2), 10, 64)
		if err1 == nil && err2 == nil && s+n > start {
			start = s + n
		}
	}
	return start, count
}
