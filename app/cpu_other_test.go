//go:build !unix

package app

import "time"

// processCPU is not measured here (0): getrusage is Unix's.
func processCPU() time.Duration { return 0 }
