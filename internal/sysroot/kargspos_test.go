package sysroot

import (
	"strings"
	"testing"
)

// TestEditedOstreePos: after an edit of the kernel arguments, ostree=
// stands where libostree's in-place edit of the whole options line
// leaves it (found by TestSysrootLayoutMatchesOstree in internal/interop).
func TestEditedOstreePos(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		old        string // with "ostree" where ostree= stands
		kargs      string
		wantResult string
	}{
		{"append after ostree= at the end", "root=X rw ostree", "root=X rw quiet", "root=X rw ostree quiet"},
		{"append after ostree= in the middle", "root=X ostree rw", "root=X rw quiet", "root=X ostree rw quiet"},
		{"set an existing key in place", "root=X ostree console=tty0", "root=X console=ttyS0", "root=X ostree console=ttyS0"},
		{"set an existing key before ostree=", "root=X ostree", "root=Y", "root=Y ostree"},
		{"delete before ostree=", "root=X rw ostree quiet", "rw quiet", "rw ostree quiet"},
		{"delete one of two values of a key", "console=a ostree console=b", "console=b", "ostree console=b"},
		{"delete after ostree=", "root=X ostree quiet", "root=X", "root=X ostree"},
		{"ostree= first", "ostree root=X", "root=X quiet", "ostree root=X quiet"},
		{"a new list", "root=X rw ostree", "quiet", "quiet ostree"},
		{"from nothing", "ostree", "quiet", "ostree quiet"},
		{"ostree= unknown (-1) is the end", "root=X", "root=X quiet", "root=X ostree quiet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			old, pos := withoutKey(strings.Fields(tt.old), "ostree")
			d := Deployment{Kargs: strings.Fields(tt.kargs), ostreePos: editedOstreePos(old, pos, strings.Fields(tt.kargs))}
			if got := strings.Join(d.optionWords(), " "); got != tt.wantResult {
				t.Errorf("editedOstreePos(%q, %d, %q) gives %q, want %q", old, pos, tt.kargs, got, tt.wantResult)
			}
		})
	}
}

// TestEditKargsInPlace: EditKargsAt edits the options line with ostree=
// in it, as `ostree admin instutil set-kargs --merge` does.
func TestEditKargsInPlace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		old     string // with "ostree" where ostree= stands
		edit    KargsEdit
		want    string
		wantErr bool
	}{
		{"append", "root=X rw ostree", KargsEdit{Append: []string{"quiet"}}, "root=X rw ostree quiet", false},
		{"delete before", "root=X rw ostree quiet", KargsEdit{Delete: []string{"root"}}, "rw ostree quiet", false},
		{"replace after", "root=X ostree console=tty0", KargsEdit{Replace: []string{"console=ttyS0"}}, "root=X ostree console=ttyS0", false},
		{"delete and append", "root=X quiet ostree", KargsEdit{Delete: []string{"quiet"}, Append: []string{"console=ttyS0"}}, "root=X ostree console=ttyS0", false},
		{"delete ostree", "root=X ostree", KargsEdit{Delete: []string{"ostree"}}, "", true},
		{"replace ostree", "root=X ostree", KargsEdit{Replace: []string{"ostree=/x"}}, "", true},
		{"set ostree", "root=X ostree", KargsEdit{Set: []string{"ostree=/x"}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			old, pos := withoutKey(strings.Fields(tt.old), "ostree")
			kargs, at, err := editKargsInPlace(old, pos, tt.edit)
			if tt.wantErr {
				if err == nil {
					t.Errorf("editKargsInPlace(%q, %d, %+v) = %q, %d, want an error", old, pos, tt.edit, kargs, at)
				}
				return
			}
			if err != nil {
				t.Fatalf("editKargsInPlace(%q, %d, %+v): %v", old, pos, tt.edit, err)
			}
			got := strings.Join(Deployment{Kargs: kargs, ostreePos: at}.optionWords(), " ")
			if got != tt.want {
				t.Errorf("editKargsInPlace(%q, %d, %+v) gives %q, want %q", old, pos, tt.edit, got, tt.want)
			}
		})
	}
}
