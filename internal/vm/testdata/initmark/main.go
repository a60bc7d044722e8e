// Command initmark is the /init of the vm package's test initramfs. It mounts devtmpfs and
// proc, then acts on strata.test= from the kernel command line:
//
//	up       write "STRATA-MARK up" to the marker port (ttyS1) and power off
//	fatal    print a FATAL line on the console and power off
//	hang     do nothing until killed
//	reboot   write "STRATA-MARK boot" and reboot, forever
//	control  serve the control port (ttyS2) like vmtest/guest/strata-vm-control, with built-in
//	         commands instead of a shell: "mark NAME [VALUE]", "exit N", "poweroff"
//
// PID 1 must never exit (the kernel would panic), so every path ends in power-off or sleep.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	os.Mkdir("/dev", 0o755)
	os.Mkdir("/proc", 0o755)
	// The kernel's devtmpfs automount does not apply to an initramfs.
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil {
		fatal("mounting /dev: %v", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		fatal("mounting /proc: %v", err)
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	mode := "up"
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "strata.test="); ok {
			mode = v
		}
	}
	fmt.Fprintf(os.Stderr, "initmark: mode %s\n", mode)
	switch mode {
	case "up":
		mark("up")
	case "fatal":
		fatal("test failure requested")
	case "hang":
		for {
			time.Sleep(time.Hour)
		}
	case "reboot":
		mark("boot")
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	case "control":
		serveControl()
	default:
		fatal("unknown mode %q", mode)
	}
	powerOff()
}

func mark(line string) {
	f, err := os.OpenFile("/dev/ttyS1", os.O_WRONLY, 0)
	if err != nil {
		fatal("opening the marker port: %v", err)
	}
	fmt.Fprintf(f, "STRATA-MARK %s\n", line)
	f.Close()
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[initmark] FATAL: "+format+"\n", args...)
	powerOff()
}

func powerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}

// serveControl reads "<id> <command>" lines from ttyS2, as the guest control script does.
func serveControl() {
	f, err := os.OpenFile("/dev/ttyS2", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		fatal("opening the control port: %v", err)
	}
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		fatal("reading the control port's termios: %v", err)
	}
	// Raw mode (cfmakeraw): no echo, no line editing, no CR/LF translation.
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag = t.Cflag&^(unix.CSIZE|unix.PARENB) | unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
		fatal("setting the control port raw: %v", err)
	}
	mark("control-ready")
	in := bufio.NewScanner(f)
	for in.Scan() {
		id, cmd, _ := strings.Cut(in.Text(), " ")
		word, arg, _ := strings.Cut(cmd, " ")
		status := 0
		switch word {
		case "mark":
			mark(arg)
		case "exit":
			status, _ = strconv.Atoi(arg)
		case "poweroff":
			powerOff()
		default:
			status = 127
		}
		mark("done " + id + " " + strconv.Itoa(status))
	}
	fatal("reading the control port: %v", in.Err())
}
