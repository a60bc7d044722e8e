package image_test

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
)

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sortStrings(s []string) []string { slices.Sort(s); return s }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
