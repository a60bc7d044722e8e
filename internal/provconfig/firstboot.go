package provconfig

// Where a disk image carries its first-boot config, relative to the physical root (the
// sysroot, which holds ostree/ and boot/): the image builder writes the config and the mark,
// prepare-root applies the config to the deployment before switch_root and removes the mark
// only once that succeeded; a failure leaves the mark and writes the failure report, which
// survives the reboot. docs/provisioning.md, "First boot".
const (
	FirstBootDir    = "strata/provision"
	FirstBootConfig = FirstBootDir + "/config"
	FirstBootMark   = FirstBootDir + "/firstboot"
	FailureReport   = FirstBootDir + "/failed.json"
)
