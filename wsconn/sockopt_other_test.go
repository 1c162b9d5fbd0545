//go:build !unix

package wsconn

import "net"

// setRecvBuffer and setSendBuffer leave the system's buffers: the slow
// reader's throttle still paces it, behind larger buffers.
func setRecvBuffer(uintptr, int) error { return nil }

func setSendBuffer(net.Conn, int) error { return nil }
