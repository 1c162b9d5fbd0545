//go:build !linux

package natstest

import "os/exec"

// dieWithParent does nothing where the kernel has no parent-death signal:
// the test's cleanup stops the server, but a killed test process leaves
// it running.
func dieWithParent(*exec.Cmd) {}
