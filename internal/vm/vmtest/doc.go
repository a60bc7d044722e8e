// Package vmtest holds fixtures for tests that boot virtual machines with internal/vm: Debian's
// kernel fetched once into a cache, a static Go program built as an initramfs /init, cpio
// archives, and a GPT disk whose ESP holds systemd-boot and BLS entries.
//
// The cache is $STRATA_CACHE/vm, or .cache/vm in the repository (removed by make clean). The
// guest/ directory holds the guest side of the control port for test images to install.
//
// It is imported by _test.go files only. Missing tools fail the test naming their Debian package.
//
// Layer: test helper.
package vmtest
