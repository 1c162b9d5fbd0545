//go:build unix

package natstest

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

// Freeze stops the server process with SIGSTOP: its sockets stay open
// and connect, but it answers nothing (a hung server, a frozen VM).
// Only for a server from StartProcess. It returns once the process is
// stopped, not just signalled (on Linux, by its state in /proc), so a
// request sent next cannot be answered first on a busy machine.
func (n *Server) Freeze() {
	n.signal(syscall.SIGSTOP)
	if runtime.GOOS != "linux" {
		time.Sleep(100 * time.Millisecond) // no /proc to ask
		return
	}
	path := fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		// "pid (comm) S ...": the state follows the command's ')'.
		if b, err := os.ReadFile(path); err == nil {
			if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'T' {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	n.t.Fatalf("natstest: the NATS server (pid %d) did not stop after SIGSTOP", n.cmd.Process.Pid)
}

// Thaw resumes a frozen server with SIGCONT.
func (n *Server) Thaw() { n.signal(syscall.SIGCONT) }
