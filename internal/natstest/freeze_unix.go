//go:build unix

package natstest

import "syscall"

// Freeze stops the server process with SIGSTOP: its sockets stay open
// and connect, but it answers nothing (a hung server, a frozen VM).
// Only for a server from StartProcess.
func (n *Server) Freeze() { n.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server with SIGCONT.
func (n *Server) Thaw() { n.signal(syscall.SIGCONT) }
