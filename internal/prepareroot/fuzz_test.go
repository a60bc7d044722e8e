package prepareroot

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{
		"root=/dev/vda rw ostree=/ostree/boot.1/os/abc/0",
		`root="LABEL=a b" rd.timeout=3 initrd.onfail=reboot -- init=/x`,
		"root=PARTUUID=x ro rd.break init=/sbin/init",
		`"`, "rd.timeout=99999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ParseCmdline(s)
		if err != nil {
			return
		}
		if cfg.Root == "" || cfg.RootFSType == "" || !strings.HasPrefix(cfg.Init, "/") || cfg.Timeout < 0 ||
			(cfg.OnFail != FailPoweroff && cfg.OnFail != FailReboot) {
			t.Errorf("ParseCmdline(%q) = %+v, want a complete config", s, cfg)
		}
	})
}

func FuzzReadGPT(f *testing.F) {
	// Small seeds (4-entry tables) keep the fuzzer fast.
	small := func(lbs int) []byte {
		b := gptImage(lbs, []gptPart{{"ESP", [16]byte{1}}, {"root", partGUID}})
		binary.LittleEndian.PutUint32(b[lbs+80:], 4)
		return b[:2*lbs+4*128]
	}
	f.Add(small(512))
	f.Add(small(4096))
	f.Add(ext4Image("sysroot", fsUUID))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := ReadGPT(bytes.NewReader(b))
		if err == nil && len(parts) > 1024 {
			t.Errorf("ReadGPT returned %d entries, want at most 1024", len(parts))
		}
		ReadExt4Superblock(bytes.NewReader(b))
	})
}
