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
		if a == "" || strings.ContainsAny(a, " \t\n") {
			return fmt.Errorf("kernel argument %q: empty or contains white space: %w", a, errdefs.ErrInvalid)
		}
		if kargKey(a) == "ostree" {
			return fmt.Errorf("kernel argument %q: ostree= is set by the sysroot: %w", a, errdefs.ErrInvalid)
		}
	}
	return nil
}
