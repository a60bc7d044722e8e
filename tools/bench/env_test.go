package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPUModel(t *testing.T) {
	t.Parallel()
	in := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got, want := parseCPUModel(in), "AMD EPYC 7B13"; got != want {
		t.Errorf("parseCPUModel() = %q, want %q", got, want)
	}
	if got, want := parseCPUModel("processor: 0\n"), "unknown"; got != want {
		t.Errorf("parseCPUModel(no model) = %q, want %q", got, want)
	}
}

func TestParseOstreeVersion(t *testing.T) {
	t.Parallel()
	in := "libostree:\n Version: '2022.7'\n Features:\n  - libcurl\n"
	if got, want := parseOstreeVersion(in), "2022.7"; got != want {
		t.Errorf("parseOstreeVersion() = %q, want %q", got, want)
	}
}

func TestParseInfo(t *testing.T) {
	t.Parallel()
	in := "name=debian\nsize=625M\nmirror=/etc/apt/a.sources /etc/apt/b.list\npackages=gcc,git\n\n"
	want := map[string]string{"name": "debian", "size": "625M", "mirror": "/etc/apt/a.sources /etc/apt/b.list", "packages": "gcc,git"}
	if diff := cmp.Diff(want, parseInfo(in)); diff != "" {
		t.Errorf("parseInfo() mismatch (-want +got):\n%s", diff)
	}
}
