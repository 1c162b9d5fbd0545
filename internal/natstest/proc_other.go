//go:build !linux

package natstest

import "syscall"

// childAttr: no parent-death signal outside Linux: a server left behind by
// a crashed test process has to be stopped by hand.
func childAttr() *syscall.SysProcAttr { return nil }
