// Package pulltest is the test-helper package of internal/pull: hostile HTTP servers, for tests
// that attack the pull client.
//
// Server publishes a directory (an archive repository, as any static web server would) on
// loopback and lets a test break chosen responses with Faults: tampered or replaced bodies,
// truncated bodies, a Content-Length that lies in either direction, endless and huge bodies, a
// body that stalls, headers that never come, a slow drip, redirect loops, error statuses that
// go away on retry. Every response is logged with the bytes actually sent, so a test can check
// what the client asked for and how much it read. Source builds the repositories to serve:
// commits of small file trees, detached ed25519 signatures, summaries and raw hand-made
// objects.
//
// Nothing here sleeps to wait: a stalled handler blocks on a channel that the test's Cleanup
// closes (or on the client going away), and the slow drip is paced by a ticker.
//
// Only tests import it. Layer: test helper (docs/conventions.md).
package pulltest
