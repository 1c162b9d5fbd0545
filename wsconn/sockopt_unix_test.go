//go:build unix

package wsconn

import (
	"fmt"
	"net"
	"syscall"
)

func setRecvBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}

// setSendBuffer sets c's SO_SNDBUF, which also stops the kernel from
// growing it.
func setSendBuffer(c net.Conn, n int) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("set send buffer: %T has no descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("set send buffer: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, n)
	}); err != nil {
		return fmt.Errorf("set send buffer: %w", err)
	}
	return serr
}
