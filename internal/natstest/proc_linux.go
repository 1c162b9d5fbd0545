package natstest

import "syscall"

// childAttr: the kernel kills the server if the test process dies
// (Pdeathsig exists on Linux only).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
