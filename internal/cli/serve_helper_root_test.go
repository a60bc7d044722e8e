//go:build root

package cli

import (
	"net/http/httptest"
	"testing"

	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/repo"
)

// serveRepo serves the archive repository at path over HTTP, as strata repo serve does, until
// the test ends.
func serveRepo(t *testing.T, path string) *httptest.Server {
	t.Helper()
	r, err := repo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := pull.NewHandler(r, nil)
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close(); r.Close() })
	return srv
}
