//go:build !unix

package natstest

import "os"

// There is no SIGSTOP here: Freeze and Thaw skip the test.
var stopSignal, contSignal os.Signal
