package pull_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/pull/pulltest"
	"github.com/strata-os/strata/internal/repo"
)

// TestAttackRedirects: a server may redirect a pull only on the same scheme (http may go up
// to https, https never down to http) and to the same host unless the remote allows other
// hosts. A refused redirect is invalid, asked for once and never retried.
func TestAttackRedirects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// arm makes e's server hostile for the attacked path and returns the URL to pull
		// from and the client to pull with (nil: the default).
		arm       func(t *testing.T, e *attackEnv, path string) (string, *http.Client)
		crossHost bool
		wantMsg   string // "" means the pull must succeed
	}{
		{
			name: "http to another host",
			arm: func(t *testing.T, e *attackEnv, path string) (string, *http.Client) {
				e.srv.Handle(pulltest.Path(path), redirectTo(strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)+"/"+path))
				return e.srv.URL, nil
			},
			wantMsg: "redirects to another host are not allowed",
		},
		{
			name: "http to another host, allowed by the remote",
			arm: func(t *testing.T, e *attackEnv, path string) (string, *http.Client) {
				e.srv.Handle(pulltest.Path(path), pulltest.Fault{Name: "redirect to localhost", Serve: func(c *pulltest.Call) {
					if c.R.Host == strings.TrimPrefix(e.srv.URL, "http://") {
						http.Redirect(c.W, c.R, strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)+"/"+path, http.StatusFound)
						return
					}
					c.Serve()
				}})
				return e.srv.URL, nil
			},
			crossHost: true,
		},
		{
			name: "https down to http",
			arm: func(t *testing.T, e *attackEnv, path string) (string, *http.Client) {
				tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, e.srv.URL+r.URL.Path, http.StatusFound)
				}))
				t.Cleanup(tls.Close)
				return tls.URL, tls.Client()
			},
			crossHost: true, // the scheme alone must refuse it
			wantMsg:   "redirects keep the scheme of the remote URL (https)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newAttackEnv(t, repo.ModeArchive, false)
			n := e.next.FileObject("usr/bin/tool")
			path := pulltest.ObjectPath(n)
			opts := e.options()
			opts.URL, opts.Client = tt.arm(t, e, path)
			opts.AllowCrossHostRedirects = tt.crossHost
			_, err := pull.Pull(context.Background(), e.client, opts)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Pull() = %v, want success", err)
				}
				checkFsck(t, e.client)
				return
			}
			checkErr(t, err, errdefs.ErrInvalid, "refusing the redirect", tt.wantMsg)
			if tries := e.srv.Count(path); opts.Client == nil && tries != 1 {
				t.Errorf("requests for %s = %d, want 1: a refused redirect is not retried", path, tries)
			}
			checkAftermath(t, e, n, e.wantRef(false))
		})
	}
}
