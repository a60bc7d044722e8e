package cli

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

func metaEntries(m ostree.Metadata) []metaEntryJSON {
	out := []metaEntryJSON{}
	for _, e := range m {
		k, _ := e.Key.(string)
		v, _ := e.Value.(gvariant.Variant)
		if v.Type == nil {
			continue
		}
		out = append(out, metaEntryJSON{Key: k, Type: v.Type.String(), Value: jsonValue(v), Text: repo.FormatVariant(v)})
	}
	return out
}

// jsonValue turns a decoded GVariant value into the JSON value scripts
// expect: a string stays a string, numbers and booleans stay themselves,
// a byte array ([]byte) becomes base64 through encoding/json, a
// dictionary with string keys an object, any other container an array.
func jsonValue(v any) any {
	switch x := v.(type) {
	case gvariant.Variant:
		return jsonValue(x.Value)
	case gvariant.Maybe:
		if !x.Valid {
			return nil
		}
		return jsonValue(x.Value)
	case []gvariant.DictEntry:
		obj := make(map[string]any, len(x))
		for _, e := range x {
			k, ok := e.Key.(string)
			if !ok {
				return jsonValue(dictPairs(x))
			}
			obj[k] = jsonValue(e.Value)
		}
		return obj
	case gvariant.DictEntry:
		return []any{jsonValue(x.Key), jsonValue(x.Value)}
	case gvariant.Tuple:
		return jsonValue([]any(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	}
	return v
}

func newRepoShowCmd() *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show --repo R REV [--json]",
		Short: "Show a commit: header, message, metadata and detached metadata",
		Long: `Print the commit REV as ostree show does, followed by every commit metadata
entry (in stored order, values in the GVariant text format) and the keys of its
detached metadata (signatures).`,
		Args:              argNames("REV"),
		ValidArgsFunction: completeRevs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			d, err := repo.Show(r, args[0])
			if err != nil {
				return fmt.Errorf("cannot show commit: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), showJSON{
					commitJSON:   newCommitJSON(d.Checksum, d.Commit),
					RootDirTree:  d.Commit.RootTree.String(),
					RootDirMeta:  d.Commit.RootMeta.String(),
					ParentStored: d.ParentStored,
					Metadata:     metaEntries(d.Commit.Metadata),
					Detached:     metaEntries(d.Detached),
				})
			}
			return printShow(cmd.OutOrStdout(), d)
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printShow(w io.Writer, d *repo.CommitDetails) error {
	var b strings.Builder
	formatCommit(&b, d.Checksum, d.Commit)
	if len(d.Commit.Metadata) > 0 {
		b.WriteString("Metadata:\n")
		for _, e := range metaEntries(d.Commit.Metadata) {
			fmt.Fprintf(&b, "    %s: %s\n", e.Key, e.Text)
		}
	}
	if len(d.Detached) > 0 {
		// Signatures are long binary blobs: name them, do not dump them.
		b.WriteString("Detached metadata:\n")
		for _, e := range d.Detached {
			k, _ := e.Key.(string)
			v, _ := e.Value.(gvariant.Variant)
			if v.Type == nil {
				continue
			}
			fmt.Fprintf(&b, "    %s: %s%s\n", k, v.Type, countSuffix(v))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// countSuffix says how many elements an array value has.
func countSuffix(v gvariant.Variant) string {
	var n int
	switch x := v.Value.(type) {
	case []any:
		n = len(x)
	case []byte:
		n = len(x)
	case []gvariant.DictEntry:
		n = len(x)
	default:
		return ""
	}
	if n == 1 {
		return " (1 element)"
	}
	return fmt.Sprintf(" (%d elements)", n)
}

// dictPairs lists a dictionary whose keys are not strings as [key, value]
// pairs.
func dictPairs(d []gvariant.DictEntry) []any {
	out := make([]any, len(d))
	for i, e := range d {
		out[i] = gvariant.DictEntry{Key: e.Key, Value: e.Value}
	}
	return out
}
