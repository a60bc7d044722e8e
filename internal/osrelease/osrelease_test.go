package osrelease

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     Values
	}{
		{"debian", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
			Values{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "NAME": "Debian GNU/Linux", "VERSION_ID": "12", "ID": "debian"}},
		{"comments and blanks", "# c\n\n  ID=x  \n", Values{"ID": "x"}},
		{"single quotes", "A='a \"b\" $c'\n", Values{"A": `a "b" $c`}},
		{"escapes", `A="x\"y\\z\$"` + "\nB=a\\ b\n", Values{"A": `x"y\z$`, "B": "a b"}},
		{"last wins", "ID=a\nID=b\n", Values{"ID": "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, d)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"no equals":   "ID\n",
		"bad key":     "1D=x\n",
		"open quote":  "ID=\"x\n",
		"open single": "ID='x\n",
		"too big":     string(make([]byte, MaxSize+1)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(in)); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Parse(%.20q) = %v, want ErrInvalid", in, err)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	v := Values{"ID": "debian", "VERSION_ID": "12", "X": `a "q" \ $v ` + "`c`"}
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal(v)): %v", err)
	}
	if d := cmp.Diff(v, got); d != "" {
		t.Errorf("Parse(Marshal(v)) (-want +got):\n%s", d)
	}
	if _, err := Marshal(Values{"A": "x\ny"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Marshal(newline) = %v, want ErrInvalid", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("ID=debian\nVERSION_ID=\"12\"\n"))
	f.Add([]byte("A='x' B=\"y\\\"\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			return
		}
		b, err := Marshal(v)
		if err != nil {
			return // values with line breaks cannot be written back
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal(%q)): %v", v, err)
		}
		if d := cmp.Diff(v, again); d != "" {
			t.Fatalf("round trip (-want +got):\n%s", d)
		}
	})
}
