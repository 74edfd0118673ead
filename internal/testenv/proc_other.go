//go:build !linux

package testenv

import (
	"os"
	"os/exec"
	"syscall"
)

// procAttr: outside Linux there is no parent-death signal; Main (or StopAll) must stop children.
func procAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals the child itself.
func signalGroup(cmd *exec.Cmd, kill bool) {
	if kill {
		_ = cmd.Process.Kill()
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
}
