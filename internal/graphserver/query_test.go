package graphserver

import (
	"net/url"
	"testing"
)

// queryCases are raw queries where parseGraphQuery must agree with url.ParseQuery and Get.
var queryCases = []string{
	"",
	"basearch=x86_64&stream=stable",
	"basearch=x86_64&stream=stable&os_checksum=abc&node_uuid=0123&rollout_wariness=0.5&oci=true&group=default&platform=metal",
	"stream=a&stream=b",                 // the first value wins
	"stream=%73table&basearch=x86%5F64", // escapes
	"st%72eam=escaped-key",
	"stream=a+b",                  // "+" is a space
	"stream=bad%zz&stream=second", // a bad escape skips the pair
	"stream=a;b&basearch=x",       // ";" in the value: skipped too (ParseQuery refuses it)
	"stream;x=1&stream=ok",
	"&&stream=&basearch=x86_64&",
	"stream&basearch",
	"oci=1&oci=0",
	"node_uuid=%",
}

func checkQuery(t *testing.T, raw string) {
	t.Helper()
	v, _ := url.ParseQuery(raw)
	want := graphParams{stream: v.Get("stream"), basearch: v.Get("basearch"), checksum: v.Get("os_checksum"),
		wariness: v.Get("rollout_wariness"), nodeUUID: v.Get("node_uuid"), oci: v.Get("oci")}
	if got := parseGraphQuery(raw); got != want {
		t.Errorf("parseGraphQuery(%q) = %+v, want %+v (url.ParseQuery)", raw, got, want)
	}
}

func TestParseGraphQuery(t *testing.T) {
	for _, raw := range queryCases {
		checkQuery(t, raw)
	}
}

func FuzzParseGraphQuery(f *testing.F) {
	for _, raw := range queryCases {
		f.Add(raw)
	}
	f.Fuzz(checkQuery)
}
