package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProxyDelaysAndCounts(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("z", 1000)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	const oneWay = 25 * time.Millisecond
	p, err := NewProxy(strings.TrimPrefix(s.URL, "http://"), oneWay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	start := time.Now()
	resp, err := client.Get("http://" + p.Addr + "/f")
	if err != nil {
		t.Fatalf("GET f through the proxy: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil || resp.StatusCode != 200 || string(got) != body {
		t.Fatalf("GET f through the proxy = %d, %d bytes, %v; want 200, 1000 bytes", resp.StatusCode, len(got), err)
	}
	// Handshake round trip + request + response: four one-way delays at least.
	if elapsed < 4*oneWay {
		t.Errorf("GET f through a proxy with %v one way took %v, want at least %v", oneWay, elapsed, 4*oneWay)
	}
	up, down := p.Bytes()
	if up < int64(len("GET /f HTTP/1.1\r\n")) || down < 1000 {
		t.Errorf("proxy Bytes() = %d up, %d down; want a request up and over 1000 bytes down", up, down)
	}
	if p.Conns() != 1 {
		t.Errorf("proxy Conns() = %d, want 1", p.Conns())
	}
}

// TestProxySplicesAndCounts: with no delay the proxy copies in the kernel and still counts
// every byte both ways once the client has closed its connection.
func TestProxySplicesAndCounts(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("y", 3<<20)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	p, err := NewProxy(strings.TrimPrefix(s.URL, "http://"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tr := &http.Transport{}
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	for i := 0; i < 2; i++ {
		resp, err := client.Get("http://" + p.Addr + "/f")
		if err != nil {
			t.Fatalf("GET f through the proxy: %v", err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(got) != body {
			t.Fatalf("GET f through the proxy = %d, %d bytes, %v; want 200, %d bytes", resp.StatusCode, len(got), err, len(body))
		}
	}
	tr.CloseIdleConnections()
	up, down := p.Bytes()
	if up < 2*int64(len("GET /f HTTP/1.1\r\n")) || up > 1000 || down < 2*int64(len(body)) || down > 2*int64(len(body))+64<<10 {
		t.Errorf("proxy Bytes() = %d up, %d down; want two requests up and two %d-byte bodies with headers and chunk framing down", up, down, len(body))
	}
	if p.Conns() != 1 {
		t.Errorf("proxy Conns() = %d, want 1 (a kept-alive connection)", p.Conns())
	}
}
