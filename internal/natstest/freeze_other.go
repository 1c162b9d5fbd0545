//go:build !unix

package natstest

// Freeze needs SIGSTOP, which this system does not have: the test that
// asks for it is skipped.
func (n *Server) Freeze() { n.t.Skip("natstest: freezing a process needs SIGSTOP (unix)") }

// Thaw is Freeze's pair; see Freeze.
func (n *Server) Thaw() { n.t.Skip("natstest: thawing a process needs SIGCONT (unix)") }
