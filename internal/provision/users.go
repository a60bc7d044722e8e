package provision

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/ignition/v2/config/util"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/strata-os/strata/internal/errdefs"
)

// userPlan is what the apply phase does on disk for one user, once the databases are written.
type userPlan struct {
	path       string // the user's JSON path, for errors
	name       string
	uid, gid   int
	home       string
	createHome bool
	removeHome bool
	keys       []string
}

// planGroup applies one passwd.groups entry to the in-memory databases (groupadd --password
// "*" for a new group). An existing group is kept if its gid is the one asked for.
func (a *accounts) planGroup(p string, g types.PasswdGroup) error {
	existing := a.group.find(g.Name)
	if util.IsFalse(g.ShouldExist) {
		if existing != nil {
			a.removeGroup(g.Name)
		}
		return nil
	}
	if existing != nil {
		if g.Gid != nil && field(existing, 2) != strconv.Itoa(*g.Gid) {
			return fmt.Errorf("%s: group %q exists with gid %s, not %d: %w", p, g.Name, field(existing, 2), *g.Gid, errdefs.ErrConflict)
		}
		if g.PasswordHash != nil {
			a.setGroupPassword(g.Name, *g.PasswordHash)
		}
		return nil
	}
	var gid int64
	if g.Gid != nil {
		gid = int64(*g.Gid)
		if usedIDs(a.group, 2)[gid] {
			return fmt.Errorf("%s.gid: gid %d is taken by another group: %w", p, gid, errdefs.ErrConflict)
		}
	} else {
		var err error
		if gid, err = a.newID(usedIDs(a.group, 2), "GID", util.IsTrue(g.System), -1); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	a.group.set([]string{g.Name, "x", strconv.FormatInt(gid, 10), ""})
	pw := "*"
	if util.NotEmpty(g.PasswordHash) {
		pw = *g.PasswordHash
	}
	a.gshadow.set([]string{g.Name, pw, "", ""})
	return nil
}

func (a *accounts) setGroupPassword(name, hash string) {
	if hash == "" {
		hash = "*"
	}
	l := pad(slices.Clone(a.gshadow.find(name)), 4)
	l[0], l[1] = name, hash
	a.gshadow.set(l)
}

func (a *accounts) removeGroup(name string) {
	for _, f := range []*dbFile{a.group, a.gshadow} {
		f.lines = slices.DeleteFunc(f.lines, func(l []string) bool { return l[0] == name })
		f.changed = true
	}
}

// planUser applies one passwd.users entry to the in-memory databases, as useradd (new user)
// or usermod (existing user) invoked by Ignition would, and returns what remains to do on
// disk. An existing user keeps its uid: a different one is an error, never a renumbering
// that would orphan the files the user owns.
func (a *accounts) planUser(p string, u types.PasswdUser) (userPlan, error) {
	plan := userPlan{path: p, name: u.Name}
	existing := a.passwd.find(u.Name)
	if util.IsFalse(u.ShouldExist) {
		if existing != nil {
			plan.home, plan.removeHome = field(existing, 5), true
			a.removeUser(u.Name, field(existing, 3))
		}
		return plan, nil
	}
	for i, g := range u.Groups {
		if a.group.find(string(g)) == nil {
			return plan, fmt.Errorf("%s.groups.%d: group %q does not exist: %w", p, i, string(g), errdefs.ErrNotFound)
		}
	}
	var gidField string
	if util.NotEmpty(u.PrimaryGroup) {
		g := *u.PrimaryGroup
		if id, ok := a.groupID(g); ok {
			gidField = strconv.Itoa(id)
		} else if _, err := strconv.Atoi(g); err == nil && usedIDs(a.group, 2)[mustInt(g)] {
			gidField = g
		} else {
			return plan, fmt.Errorf("%s.primaryGroup: group %q does not exist: %w", p, g, errdefs.ErrNotFound)
		}
	}
	if existing != nil {
		return a.modifyUser(p, u, existing, gidField)
	}
	return a.addUser(p, u, gidField)
}

func mustInt(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

func (a *accounts) addUser(p string, u types.PasswdUser, gidField string) (userPlan, error) {
	plan := userPlan{path: p, name: u.Name}
	system := util.IsTrue(u.System)
	users := usedIDs(a.passwd, 2)
	var uid int64
	if u.UID != nil {
		uid = int64(*u.UID)
		if users[uid] {
			return plan, fmt.Errorf("%s.uid: uid %d is taken by another user: %w", p, uid, errdefs.ErrConflict)
		}
	} else {
		var err error
		if uid, err = a.newID(users, "UID", system, -1); err != nil {
			return plan, fmt.Errorf("%s: %w", p, err)
		}
	}
	switch {
	case gidField != "":
	case util.IsTrue(u.NoUserGroup) || a.defs["USERGROUPS_ENAB"] == "no":
		gidField = a.useradd["GROUP"]
		if gidField == "" {
			gidField = "100"
		}
		if id, ok := a.groupID(gidField); ok {
			gidField = strconv.Itoa(id)
		}
	default:
		// The user private group, numbered like the user when that number is free.
		if a.group.find(u.Name) != nil {
			return plan, fmt.Errorf("%s: a group named %q exists; set primaryGroup or noUserGroup: %w", p, u.Name, errdefs.ErrConflict)
		}
		gid, err := a.newID(usedIDs(a.group, 2), "GID", system, uid)
		if err != nil {
			return plan, fmt.Errorf("%s: %w", p, err)
		}
		gidField = strconv.FormatInt(gid, 10)
		a.group.set([]string{u.Name, "x", gidField, ""})
		a.gshadow.set([]string{u.Name, "!", "", ""})
	}
	home := path.Join(a.homeBase(), u.Name)
	if util.NotEmpty(u.HomeDir) {
		home = *u.HomeDir
	}
	shell := a.useradd["SHELL"]
	if util.NotEmpty(u.Shell) {
		shell = *u.Shell
	}
	gecos := ""
	if u.Gecos != nil {
		gecos = *u.Gecos
	}
	pw := "*"
	if util.NotEmpty(u.PasswordHash) {
		pw = *u.PasswordHash
	}
	a.passwd.set([]string{u.Name, "x", strconv.FormatInt(uid, 10), gidField, gecos, home, shell})
	aging := []string{a.defs["PASS_MIN_DAYS"], a.defs["PASS_MAX_DAYS"], a.defs["PASS_WARN_AGE"]}
	if system {
		// useradd gives system accounts no password aging.
		aging = []string{"", "", ""}
	}
	a.shadow.set(append([]string{u.Name, pw, strconv.FormatInt(a.today, 10)}, append(aging, "", "", "")...))
	for _, g := range u.Groups {
		addMember(a.group, string(g), u.Name, 3)
		addMember(a.gshadow, string(g), u.Name, 3)
	}
	if !system && a.subuid.exists && a.subuid.find(u.Name) == nil {
		start, n := a.nextSubordinate(a.subuid, "UID")
		a.subuid.set([]string{u.Name, strconv.FormatInt(start, 10), strconv.FormatInt(n, 10)})
	}
	if !system && a.subgid.exists && a.subgid.find(u.Name) == nil {
		start, n := a.nextSubordinate(a.subgid, "GID")
		a.subgid.set([]string{u.Name, strconv.FormatInt(start, 10), strconv.FormatInt(n, 10)})
	}
	plan.uid, plan.gid = int(uid), int(mustInt(gidField))
	plan.home, plan.createHome = home, !util.IsTrue(u.NoCreateHome)
	plan.keys = keys(u)
	return plan, nil
}

func (a *accounts) modifyUser(p string, u types.PasswdUser, l []string, gidField string) (userPlan, error) {
	plan := userPlan{path: p, name: u.Name}
	l = pad(slices.Clone(l), 7)
	if u.UID != nil && l[2] != strconv.Itoa(*u.UID) {
		return plan, fmt.Errorf("%s.uid: user %q exists with uid %s, not %d; strata does not renumber users: %w", p, u.Name, l[2], *u.UID, errdefs.ErrConflict)
	}
	if gidField != "" {
		l[3] = gidField
	}
	if u.Gecos != nil {
		l[4] = *u.Gecos
	}
	if util.NotEmpty(u.HomeDir) && *u.HomeDir != l[5] {
		return plan, fmt.Errorf("%s.homeDir: user %q exists with home %s; strata does not move homes: %w", p, u.Name, l[5], errdefs.ErrUnsupported)
	}
	if util.NotEmpty(u.Shell) {
		l[6] = *u.Shell
	}
	a.passwd.set(l)
	if u.PasswordHash != nil {
		pw := *u.PasswordHash
		if pw == "" {
			pw = "*"
		}
		s := a.shadow.find(u.Name)
		if s == nil {
			s = []string{u.Name, "", strconv.FormatInt(a.today, 10), "", "", "", "", "", ""}
		}
		s = pad(slices.Clone(s), 9)
		// usermod --password also records the day of the change.
		s[1], s[2] = pw, strconv.FormatInt(a.today, 10)
		a.shadow.set(s)
	}
	if len(u.Groups) > 0 {
		// usermod --groups: the list replaces the supplementary groups.
		want := make([]string, len(u.Groups))
		for i, g := range u.Groups {
			want[i] = string(g)
		}
		for _, f := range []*dbFile{a.group, a.gshadow} {
			for _, g := range slices.Clone(f.lines) {
				if !slices.Contains(want, g[0]) {
					removeMember(f, g, u.Name, 3)
				}
			}
			for _, g := range want {
				addMember(f, g, u.Name, 3)
			}
		}
	}
	plan.uid, plan.gid = int(mustInt(l[2])), int(mustInt(l[3]))
	plan.home = l[5]
	plan.keys = keys(u)
	return plan, nil
}

func (a *accounts) removeUser(name, gid string) {
	for _, f := range []*dbFile{a.passwd, a.shadow, a.subuid, a.subgid} {
		f.lines = slices.DeleteFunc(f.lines, func(l []string) bool { return l[0] == name })
		f.changed = true
	}
	for _, f := range []*dbFile{a.group, a.gshadow} {
		for _, g := range slices.Clone(f.lines) {
			removeMember(f, g, name, 3)
		}
	}
	if g := a.group.find(name); g != nil && field(g, 2) == gid && field(g, 3) == "" {
		a.removeGroup(name)
	}
}

// homeBase is where new homes go: HOME of etc/default/useradd as useradd reads it, else
// /var/home when the tree's /home is the OSTree layout's symlink to var/home (homes live on
// the stateroot's /var), else /home.
func (a *accounts) homeBase() string {
	if h := a.useradd["HOME"]; h != "" {
		return h
	}
	if a.homeIsVar {
		return "/var/home"
	}
	return "/home"
}

func keys(u types.PasswdUser) []string {
	out := make([]string, 0, len(u.SSHAuthorizedKeys))
	for _, k := range u.SSHAuthorizedKeys {
		out = append(out, strings.TrimSpace(string(k)))
	}
	return out
}
