//go:build !unix

package natstest

import "syscall"

// No SIGSTOP/SIGCONT here (Windows): Freeze and Thaw fail the test with
// the error of the signal, which the process cannot receive.
const (
	sigStop = syscall.Signal(0x13)
	sigCont = syscall.Signal(0x12)
)
