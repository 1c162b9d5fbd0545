//go:build !linux

package testbin

import (
	"errors"
	"syscall"
)

// sysProcAttr: elsewhere the child runs as the test's own user, and a
// crashed test may leave it running (no Pdeathsig), so tests must stop
// what they start.
func sysProcAttr(cred *Credential) (*syscall.SysProcAttr, error) {
	if cred != nil {
		return nil, errors.New("running as another user needs Linux")
	}
	return nil, nil
}
