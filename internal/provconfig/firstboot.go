package provconfig

// Where a disk image carries its first-boot config, relative to the physical root (the
// sysroot, which holds ostree/ and boot/): the image builder writes the config and the mark,
// prepare-root applies the config to the deployment before switch_root, records the result
// and removes the mark only once that succeeded; a failure leaves the mark and writes the
// failure report, which survives the reboot. docs/provisioning.md, "First boot".
const (
	FirstBootDir    = "strata/provision"
	FirstBootConfig = FirstBootDir + "/config"
	FirstBootMark   = FirstBootDir + "/firstboot"
	FailureReport   = FirstBootDir + "/failed.json"
	// FirstBootRecord says when the node was provisioned, with which config (its digest) and
	// from which source; it is written before the mark is removed.
	FirstBootRecord = FirstBootDir + "/provisioned.json"
	// KargsPending holds the config's kernelArguments until they are set on the deployment
	// (strata kargs --provisioned, run by strata-provision-kargs.service), which then reboots
	// once.
	KargsPending = FirstBootDir + "/kargs.json"
)

// Where prepare-root looks for a first-boot config, in this order: the first that has one
// wins (docs/provisioning.md, "Config sources").
const (
	// FwCfgConfig is QEMU's fw_cfg entry (qemu -fw_cfg name=opt/com.coreos/config,file=F), as
	// the kernel's qemu_fw_cfg module shows it, relative to /sys. Fedora CoreOS's name.
	FwCfgConfig = "firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw"
	// ConfigURLArg is the kernel argument naming a config to fetch over the network.
	ConfigURLArg = "ignition.config.url"
)
