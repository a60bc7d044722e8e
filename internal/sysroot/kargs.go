package sysroot

import (
	"fmt"
	"slices"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// Kernel arguments are kept as libostree keeps them (ostree-kernel-args.c):
// an ordered list of "KEY" or "KEY=VALUE" words; the options line is
// split on single spaces.

// splitOptions splits a BLS options value into words.
func splitOptions(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func kargKey(a string) string {
	k, _, _ := strings.Cut(a, "=")
	return k
}

// replaceKarg sets arg in args: the first word with the same key is
// replaced in place and the other words with that key are removed; a new
// key is appended (ostree_kernel_args_replace_take).
func replaceKarg(args []string, arg string) []string {
	key := kargKey(arg)
	out := make([]string, 0, len(args)+1)
	done := false
	for _, a := range args {
		if kargKey(a) != key {
			out = append(out, a)
			continue
		}
		if !done {
			out = append(out, arg)
			done = true
		}
	}
	if !done {
		out = append(out, arg)
	}
	return out
}

// withoutKey returns args without the words of key, and the index the
// first one had (-1 if none).
func withoutKey(args []string, key string) ([]string, int) {
	pos := -1
	out := make([]string, 0, len(args))
	for _, a := range args {
		if kargKey(a) == key {
			if pos < 0 {
				pos = len(out)
			}
			continue
		}
		out = append(out, a)
	}
	return out, pos
}

// KargsEdit is one change to a list of kernel arguments, with the
// meaning `ostree admin kargs edit-in-place` and `rpm-ostree kargs` give
// these verbs.
type KargsEdit struct {
	// Append adds KEY[=VALUE] at the end, even if KEY is already there.
	Append []string
	// Replace sets KEY=VALUE when KEY has one value, or changes one value
	// with KEY=OLD=NEW.
	Replace []string
	// Delete removes KEY (when it has one value) or KEY=VALUE.
	Delete []string
	// Set puts KEY=VALUE in place of the first KEY and drops the other
	// values of KEY, or appends it: `ostree admin deploy --karg`
	// (ostree_kernel_args_replace_argv).
	Set []string
}

// EditKargs applies e to args (deletes, replaces, sets, then appends) and
// returns the new list; args is not modified. Deleting or replacing an
// argument that is not there is errdefs.ErrNotFound; an ambiguous key
// (several values) is errdefs.ErrInvalid.
func EditKargs(args []string, e KargsEdit) ([]string, error) {
	out := slices.Clone(args)
	for _, d := range e.Delete {
		key, val, hasVal := strings.Cut(d, "=")
		var idx []int
		for i, a := range out {
			if kargKey(a) == key {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			return nil, fmt.Errorf("deleting kernel argument %q: key %q: %w", d, key, errdefs.ErrNotFound)
		}
		pick := -1
		for _, i := range idx {
			if (!hasVal && out[i] == key) || (hasVal && out[i] == key+"="+val) {
				pick = i
				break
			}
		}
		if len(idx) == 1 && !hasVal {
			pick = idx[0]
		}
		if pick < 0 {
			if !hasVal {
				return nil, fmt.Errorf("deleting kernel argument %q: key has several values: %w", d, errdefs.ErrInvalid)
			}
			return nil, fmt.Errorf("deleting kernel argument %q: %w", d, errdefs.ErrNotFound)
		}
		out = slices.Delete(out, pick, pick+1)
	}
	for _, r := range e.Replace {
		key, val, _ := strings.Cut(r, "=")
		var idx []int
		for i, a := range out {
			if kargKey(a) == key {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			return nil, fmt.Errorf("replacing kernel argument %q: key %q: %w", r, key, errdefs.ErrNotFound)
		}
		if oldVal, newVal, ok := strings.Cut(val, "="); ok {
			pick := -1
			for _, i := range idx {
				if out[i] == key+"="+oldVal {
					pick = i
					break
				}
			}
			if pick < 0 {
				return nil, fmt.Errorf("replacing kernel argument %q: no %s=%s: %w", r, key, oldVal, errdefs.ErrNotFound)
			}
			out[pick] = key + "=" + newVal
			continue
		}
		if len(idx) > 1 {
			return nil, fmt.Errorf("replacing kernel argument %q: key has several values: %w", r, errdefs.ErrInvalid)
		}
		out[idx[0]] = r
	}
	for _, a := range e.Set {
		out = replaceKarg(out, a)
	}
	out = append(out, e.Append...)
	return out, nil
}

// validateKargs refuses words BLS options cannot carry.
func validateKargs(args []string) error {
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n") || hasControl(a) {
			return fmt.Errorf("kernel argument %q: empty or contains white space or a control character: %w", a, errdefs.ErrInvalid)
		}
		if kargKey(a) == "ostree" {
			return fmt.Errorf("kernel argument %q: ostree= is set by the sysroot: %w", a, errdefs.ErrInvalid)
		}
	}
	return nil
}

// editKargsInPlace applies e to args, in which ostree= stands at pos
// (-1: at the end), the way libostree edits a whole options line; it
// returns the new arguments and where ostree= stands in them. An edit
// of ostree= itself is errdefs.ErrInvalid.
func editKargsInPlace(args []string, pos int, e KargsEdit) ([]string, int, error) {
	if pos < 0 || pos > len(args) {
		pos = len(args)
	}
	const marker = "ostree=\x00" // no real argument holds a NUL
	out, err := EditKargs(slices.Insert(slices.Clone(args), pos, marker), e)
	if err != nil {
		return nil, 0, err
	}
	at := slices.Index(out, marker)
	if at < 0 || slices.Index(out[at+1:], marker) >= 0 {
		return nil, 0, fmt.Errorf("editing kernel arguments: ostree= is set by the sysroot: %w", errdefs.ErrInvalid)
	}
	return slices.Delete(out, at, at+1), at, nil
}

// editedOstreePos returns where ostree= stands in kargs, an edit
// (EditKargs) of old in which ostree= stood at pos (-1: at the end).
// libostree edits the whole options line, ostree= included, and then
// replaces ostree= in place, so ostree= stays after the surviving
// arguments that preceded it and before the appended ones:
// "root=X ostree=A quiet" with console=ttyS0 appended becomes
// "root=X ostree=B quiet console=ttyS0". The survivors are found by
// walking old and kargs in step: an equal word, or a word of the same
// key that old does not hold later (a replaced value). If no argument of
// old survives, kargs is a new list and ostree= goes at the end, as
// libostree appends it to a list without one.
func editedOstreePos(old []string, pos int, kargs []string) int {
	if pos < 0 || pos > len(old) {
		pos = len(old)
	}
	j, at := 0, 0
	for i, a := range old {
		if j < len(kargs) && (kargs[j] == a || (kargKey(kargs[j]) == kargKey(a) && !slices.Contains(old[i+1:], kargs[j]))) {
			j++
		}
		if i == pos-1 {
			at = j
		}
	}
	if j == 0 && len(old) > 0 {
		return -1
	}
	return at
}
