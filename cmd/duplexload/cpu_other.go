//go:build !unix

package main

import "time"

// selfCPU is unknown here (no getrusage): the report shows the load
// tool's own CPU as 0.
func selfCPU() time.Duration { return 0 }
