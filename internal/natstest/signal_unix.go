//go:build unix

package natstest

import "syscall"

// Freeze and Thaw stop and resume the server process.
const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)
