package graph

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

// index returns a releases.json of the given versions, each with an x86_64 commit "c-VERSION"
// and an image "img@sha256:VERSION".
func index(versions ...string) ReleaseIndex {
	var ri ReleaseIndex
	for _, v := range versions {
		ri.Releases = append(ri.Releases, Release{Version: v,
			Commits:   []Commit{{Architecture: "aarch64", Checksum: "arm-" + v}, {Architecture: "x86_64", Checksum: "c-" + v}},
			OCIImages: []OCIImage{{Architecture: "x86_64", Image: "img", DigestRef: "img@sha256:" + v}},
		})
	}
	return ri
}

func edges(g Graph) []string {
	var out []string
	for _, e := range g.Edges {
		out = append(out, g.Nodes[e[0]].Version+">"+g.Nodes[e[1]].Version)
	}
	return out
}

func TestBuildEdges(t *testing.T) {
	t.Parallel()
	rollout := &Rollout{StartEpoch: ptr(int64(100)), StartPercentage: ptr(0.0), DurationMinutes: ptr(uint64(60))}
	tests := []struct {
		name     string
		versions []string
		updates  []UpdateRelease
		want     []string
	}{
		{name: "no updates file entries: no edges", versions: []string{"1", "2", "3"}, want: nil},
		{name: "a rollout gets edges from every older release",
			versions: []string{"1", "2", "3"},
			updates:  []UpdateRelease{{Version: "3", Metadata: UpdateMetadata{Rollout: rollout}}},
			want:     []string{"1>3", "2>3"}},
		{name: "a barrier is not skipped",
			versions: []string{"1", "2", "3", "4"},
			updates: []UpdateRelease{
				{Version: "2", Metadata: UpdateMetadata{Barrier: &Reason{}}},
				{Version: "4", Metadata: UpdateMetadata{Rollout: rollout}},
			},
			want: []string{"2>4", "3>4", "1>2"}},
		{name: "two barriers chain",
			versions: []string{"1", "2", "3", "4", "5"},
			updates: []UpdateRelease{
				{Version: "2", Metadata: UpdateMetadata{Barrier: &Reason{Reason: "migrates the disk layout"}}},
				{Version: "4", Metadata: UpdateMetadata{Barrier: &Reason{}}},
				{Version: "5", Metadata: UpdateMetadata{Rollout: rollout}},
			},
			want: []string{"4>5", "1>2", "2>4", "3>4"}},
		{name: "a barrier that is being rolled out is reached by the rollout rule only",
			versions: []string{"1", "2", "3"},
			updates: []UpdateRelease{
				{Version: "3", Metadata: UpdateMetadata{Barrier: &Reason{}, Rollout: rollout}},
			},
			want: []string{"1>3", "2>3"}},
		{name: "a dead end has no way out",
			versions: []string{"1", "2", "3"},
			updates: []UpdateRelease{
				{Version: "2", Metadata: UpdateMetadata{Deadend: &Reason{Reason: "broken"}, Rollout: rollout}},
				{Version: "3", Metadata: UpdateMetadata{Rollout: rollout}},
			},
			want: []string{"1>3", "1>2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := Build(index(tt.versions...), Updates{Releases: tt.updates}, Scope{Basearch: "x86_64"})
			if diff := cmp.Diff(tt.want, edges(g)); diff != "" {
				t.Errorf("Build edges (-want +got):\n%s", diff)
			}
			if err := g.Validate(); err != nil {
				t.Errorf("Build gave an invalid graph: %v", err)
			}
		})
	}
}

func TestBuildNodes(t *testing.T) {
	t.Parallel()
	ri := index("1", "2", "3")
	// Release 2 has no x86_64 commit: skipped, but it keeps its age_index slot.
	ri.Releases[1].Commits = ri.Releases[1].Commits[:1]
	ri.Releases[1].OCIImages = nil
	u := Updates{Releases: []UpdateRelease{{Version: "3", Metadata: UpdateMetadata{
		Barrier: &Reason{}, Deadend: &Reason{Reason: "use the new stream"},
		Rollout: &Rollout{StartEpoch: ptr(int64(1591279200)), StartPercentage: ptr(0.25), DurationMinutes: ptr(uint64(2880))},
	}}}}
	g := Build(ri, u, Scope{Basearch: "x86_64"})
	want := []Node{
		{Version: "1", Payload: "c-1", Metadata: map[string]string{KeyAgeIndex: "0", KeyScheme: "checksum"}},
		{Version: "3", Payload: "c-3", Metadata: map[string]string{KeyAgeIndex: "2", KeyScheme: "checksum",
			KeyBarrier: "true", KeyBarrierReason: "generic", KeyDeadend: "true", KeyDeadendReason: "use the new stream",
			KeyRollout: "true", KeyStartEpoch: "1591279200", KeyStartValue: "0.25", KeyDuration: "2880"}},
	}
	if diff := cmp.Diff(want, g.Nodes); diff != "" {
		t.Errorf("Build nodes (-want +got):\n%s", diff)
	}
	oci := Build(ri, u, Scope{Basearch: "x86_64", OCI: true})
	if len(oci.Nodes) != 2 || oci.Nodes[1].Payload != "img@sha256:3" || oci.Nodes[1].Scheme() != SchemeOCI {
		t.Errorf("Build(oci) nodes = %+v, want releases 1 and 3 with their image digests, scheme oci", oci.Nodes)
	}
	arm := Build(ri, u, Scope{Basearch: "aarch64"})
	if len(arm.Nodes) != 3 || arm.Nodes[1].Payload != "arm-2" {
		t.Errorf("Build(aarch64) nodes = %+v, want all three with their arm commits", arm.Nodes)
	}
}

func TestParseInputs(t *testing.T) {
	t.Parallel()
	// The shape of Fedora CoreOS's files, with keys strata does not use.
	releases := `{"note":"x","releases":[{"version":"38.1","metadata":"https://example/meta.json",
		"commits":[{"architecture":"x86_64","checksum":"aa"}],
		"oci-images":[{"architecture":"x86_64","image":"quay.io/os","digest-ref":"quay.io/os@sha256:bb"}]}],"stream":"stable"}`
	ri, err := ParseReleaseIndex(strings.NewReader(releases))
	if err != nil || len(ri.Releases) != 1 || ri.Releases[0].OCIImages[0].DigestRef != "quay.io/os@sha256:bb" {
		t.Fatalf("ParseReleaseIndex = %+v, %v", ri, err)
	}
	updates := `{"stream":"stable","metadata":{"last_modified":"2020-06-04T12:00:00Z"},"releases":[
		{"version":"38.1","metadata":{"rollout":{"start_epoch":1591279200,"start_percentage":0.0,"duration_minutes":2880}}}]}`
	u, err := ParseUpdates(strings.NewReader(updates))
	if err != nil || *u.Releases[0].Metadata.Rollout.DurationMinutes != 2880 {
		t.Fatalf("ParseUpdates = %+v, %v", u, err)
	}
	for _, bad := range []string{
		`{"releases":[{"version":"1"},{"version":"1"}]}`,
		`{"releases":[{"commits":[]}]}`,
		`{"releases":`,
	} {
		if _, err := ParseReleaseIndex(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseReleaseIndex(%s) succeeded, want an error", bad)
		}
	}
	for _, bad := range []string{
		`{"releases":[{"version":"1","metadata":{"rollout":{"start_percentage":25}}}]}`,
		`{"releases":[{"metadata":{}}]}`,
	} {
		if _, err := ParseUpdates(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseUpdates(%s) succeeded, want an error", bad)
		}
	}
}
