package provision

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKargsEdit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		current       []string
		ka            KernelArguments
		wantAdd, want []string
	}{
		{name: "nothing asked", current: []string{"quiet"}},
		{name: "already satisfied", current: []string{"console=ttyS0", "quiet"},
			ka: KernelArguments{ShouldExist: []string{"console=ttyS0"}, ShouldNotExist: []string{"splash"}}},
		{name: "append missing, delete present", current: []string{"root=LABEL=root", "quiet"},
			ka:      KernelArguments{ShouldExist: []string{"console=ttyS0", "console=ttyS0", "quiet"}, ShouldNotExist: []string{"quiet", "rhgb"}},
			wantAdd: []string{"console=ttyS0"}, want: []string{"quiet"}},
		{name: "key=value is matched whole", current: []string{"console=tty0"},
			ka: KernelArguments{ShouldExist: []string{"console=ttyS0"}, ShouldNotExist: []string{"console"}}, wantAdd: []string{"console=ttyS0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			add, del := KargsEdit(tc.current, tc.ka)
			if diff := cmp.Diff(tc.wantAdd, add); diff != "" {
				t.Errorf("KargsEdit(%q) append (-want +got):\n%s", tc.current, diff)
			}
			if diff := cmp.Diff(tc.want, del); diff != "" {
				t.Errorf("KargsEdit(%q) delete (-want +got):\n%s", tc.current, diff)
			}
		})
	}
}
