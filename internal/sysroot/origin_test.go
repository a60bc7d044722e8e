package sysroot

import "testing"

func TestKindOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		refspec string
		want    OriginKind
	}{
		{"origin:os/stable", OriginRemote},
		{"os/stable", OriginLocalRef},
		{"54ee1d18df28d764df8263fb93892fc7fd8d409beb6ada6c36cdef56b4b6d2c2", OriginCommit},
		{"", OriginCommit},
	} {
		if got := KindOf(tc.refspec); got != tc.want {
			t.Errorf("KindOf(%q) = %q, want %q", tc.refspec, got, tc.want)
		}
	}
}

// TestImageOrigin: an image reference is written as rpm-ostree writes it
// (container-image-reference=, no refspec=), with the digest in its own
// group, and read back as the deployment's refspec and digest.
func TestImageOrigin(t *testing.T) {
	t.Parallel()
	ref := "ostree-unverified-registry:registry.example/os:stable"
	if got := KindOf(ref); got != OriginImage {
		t.Errorf("KindOf(%q) = %q, want %q", ref, got, OriginImage)
	}
	if got := KindOf("ostree-image-signed:docker://registry.example/os:stable"); got != OriginImage {
		t.Errorf("KindOf(signed reference) = %q, want %q", got, OriginImage)
	}
	f := NewImageOrigin(ref, "sha256:0123")
	want := "[origin]\ncontainer-image-reference=" + ref + "\n\n[strata-image]\nmanifest-digest=sha256:0123\n"
	if got := string(f.Bytes()); got != want {
		t.Errorf("NewImageOrigin = %q, want %q", got, want)
	}
	if got, d := originRefspec(f), originImageDigest(f); got != ref || d != "sha256:0123" {
		t.Errorf("read back: refspec %q, digest %q; want %q, sha256:0123", got, d, ref)
	}
	if got := string(NewOrigin(ref).Bytes()); got != "[origin]\ncontainer-image-reference="+ref+"\n" {
		t.Errorf("NewOrigin(%q) = %q, want a container-image-reference line", ref, got)
	}
}
