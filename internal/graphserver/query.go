package graphserver

import (
	"net/url"
	"strings"
)

// graphParams are the query parameters a graph request reads.
type graphParams struct {
	stream, basearch, checksum, wariness, nodeUUID, oci string
}

// parseGraphQuery reads the parameters of a graph request from a raw query as url.ParseQuery
// and Values.Get would: pairs separated by "&", the first value of a key wins, a pair whose key
// holds ";" or whose escapes are bad is skipped. It allocates only to unescape a key or value
// that needs it, where ParseQuery builds a map of every pair on every request.
func parseGraphQuery(raw string) graphParams {
	var p graphParams
	var seen [6]bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		key, ok := unescape(key)
		if !ok {
			continue
		}
		var field *string
		var i int
		switch key {
		case "stream":
			field, i = &p.stream, 0
		case "basearch":
			field, i = &p.basearch, 1
		case "os_checksum":
			field, i = &p.checksum, 2
		case "rollout_wariness":
			field, i = &p.wariness, 3
		case "node_uuid":
			field, i = &p.nodeUUID, 4
		case "oci":
			field, i = &p.oci, 5
		default:
			continue
		}
		if seen[i] {
			continue
		}
		if value, ok = unescape(value); ok {
			*field, seen[i] = value, true
		}
	}
	return p
}

// unescape is url.QueryUnescape for the strings that need it.
func unescape(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}
