//go:build linux

package testbin

import "syscall"

// sysProcAttr runs the child as cred, if set, and has the kernel kill it
// if the test process dies (Pdeathsig), so no server outlives a crashed
// test.
func sysProcAttr(cred *Credential) (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if cred != nil {
		attr.Credential = &syscall.Credential{Uid: cred.Uid, Gid: cred.Gid, Groups: []uint32{}}
	}
	return attr, nil
}
