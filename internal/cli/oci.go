package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/oci"
)

type ociPushJSON struct {
	Commit         string `json:"commit"`
	ManifestDigest string `json:"manifest_digest"`
	Layers         int    `json:"layers"`
	LayersReused   int    `json:"layers_reused"`
	LayersCached   int    `json:"layers_from_cache"`
}

type ociPullJSON struct {
	Commit         string `json:"commit"`
	Base           string `json:"base"`
	ManifestDigest string `json:"manifest_digest"`
	LayersFetched  int    `json:"layers_fetched"`
	LayersSkipped  int    `json:"layers_skipped"`
	LayersRecorded int    `json:"layers_recorded"`
	BytesToFetch   int64  `json:"bytes_to_fetch"`
	BytesFetched   int64  `json:"bytes_fetched"`
}

func addRegistryFlags(cmd *cobra.Command, o *oci.RegistryOptions) {
	cmd.Flags().BoolVar(&o.Insecure, "insecure", false, "allow plain HTTP and registry certificates that do not verify")
	cmd.Flags().StringVar(&o.CAFile, "ca-file", "", "PEM file of certificate authorities to trust besides the system's")
}

func newOCIPushCmd() *cobra.Command {
	var (
		path, signKey string
		opts          oci.PushOptions
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "push --repo R [--sign-key KEY] [--insecure] [--ca-file FILE] REV DEST",
		Short: "Encapsulate a commit as an OCI image and write it to a registry, layout or archive",
		Long: `Encapsulate the commit REV as a bootable container image, as bootc and
ostree-ext define it (docs/oci.md), and write it to DEST:

  docker://HOST/NAME:TAG   a registry (credentials from auth.json or ~/.docker/config.json)
  oci:DIR[:TAG]            an OCI image layout directory
  oci-archive:FILE[:TAG]   a tar of an OCI image layout

Layers are plain tar layers split by package (at most 64); the last one
carries the commit object, so that strata oci pull reproduces the same
commit checksum. The same commit always gives the same manifest digest,
which is printed. --sign-key (a PEM ECDSA private key) adds a sigstore
simple-signing signature, stored as the tag sha256-<digest>.sig.`,
		Args: argNames("REV", "DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			if signKey != "" {
				if opts.SignKey, err = oci.LoadSigstorePrivateKey(signKey); err != nil {
					return err
				}
			}
			res, err := oci.Push(cmd.Context(), r, args[0], args[1], opts)
			if err != nil {
				return fmt.Errorf("cannot push %s: %w", args[0], err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ociPushJSON{Commit: res.Commit.String(),
					ManifestDigest: res.ManifestDigest, Layers: res.Layers, LayersReused: res.LayersReused,
					LayersCached: res.LayersFromCache})
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.ManifestDigest)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	addRegistryFlags(cmd, &opts.RegistryOptions)
	cmd.Flags().IntVar(&opts.MaxLayers, "max-layers", oci.DefaultMaxLayers, "most layers to split the commit into")
	cmd.Flags().StringVar(&signKey, "sign-key", "", "PEM ECDSA private key to sign the image with (sigstore simple signing)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newOCIPullCmd() *cobra.Command {
	var (
		path   string
		keys   []string
		opts   oci.PullOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "pull --repo R [--ref REF] [--sigstore-key PUB]... [--insecure] [--ca-file FILE] SRC",
		Short: "Import an OCI image as a commit",
		Long: `Import the image at SRC (docker://, oci:DIR[:TAG] or oci-archive:FILE[:TAG])
as a commit and print its checksum. A strata image gives back the very
commit that was pushed; layers after ostree.final-diffid (a Containerfile's
FROM) are committed on top of it. Every blob is checked against its
digest; --ref moves only when all of the image was imported. With
--sigstore-key, the image must carry a sigstore simple-signing signature by
one of the keys (PEM public keys, as cosign writes them), checked before
any layer is fetched.

From a registry, layer blobs are downloaded four at a time (--jobs) while the
layers are applied in order; a blob cut off by a dropped connection is resumed
with a Range request, also by the next pull after an interrupted one.`,
		Args: argNames("SRC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			if len(keys) > 0 {
				if opts.SigstoreKeys, err = oci.LoadSigstorePublicKeys(keys...); err != nil {
					return err
				}
			}
			bar := newProgress(cmd, "pull", -1, true)
			opts.Progress = bar
			res, err := oci.Pull(cmd.Context(), r, args[0], opts)
			bar.Finish()
			if err != nil {
				return fmt.Errorf("cannot pull %s: %w", args[0], err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ociPullJSON{Commit: res.Commit.String(), Base: res.Base.String(),
					ManifestDigest: res.ManifestDigest, LayersFetched: res.LayersFetched, LayersSkipped: res.LayersSkipped,
					LayersRecorded: res.LayersRecorded, BytesToFetch: res.BytesToFetch, BytesFetched: res.BytesFetched})
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Commit)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	addRegistryFlags(cmd, &opts.RegistryOptions)
	cmd.Flags().StringVar(&opts.Ref, "ref", "", "ref to move to the imported commit")
	cmd.Flags().IntVar(&opts.Jobs, "jobs", 4, "blobs to download at once")
	cmd.Flags().StringArrayVar(&keys, "sigstore-key", nil, "PEM public key whose sigstore signature the image must carry (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
