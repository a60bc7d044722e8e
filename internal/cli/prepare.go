package cli

import (
	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

// preparers are what `strata upgrade` and the agent run on a new base
// commit after pulling it and before staging it (sysroot.Preparer), in
// this order: each node-local addition to the base (layered packages,
// extensions) adds its own.
func preparers(cmd *cobra.Command) []sysroot.Preparer {
	return []sysroot.Preparer{
		layerPreparer(cmd),  // layered packages: re-derived on the new base
		sysextPreparer(cmd), // extensions: fetch the images matching the new OS version
	}
}
