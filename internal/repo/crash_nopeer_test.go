//go:build !peer

package repo

import "testing"

// peerFsck checks the repository with `ostree fsck` in the peer tier
// (crash_peer_test.go); without the peer tag there is no peer to ask.
func peerFsck(t *testing.T, repo string) {}
