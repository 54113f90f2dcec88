//go:build !hbtrace

package conn

import (
	"errors"
	"io"
)

// traceHB records a heartbeat event when built with -tags hbtrace
// (hbtrace.go); otherwise it is empty and inlined away.
func traceHB(*Conn, byte, int64) {}

// HBTraceEnabled reports whether this build records heartbeat events.
const HBTraceEnabled = false

// WriteHBTrace writes the heartbeat events recorded so far; without
// -tags hbtrace nothing is recorded and it fails.
func WriteHBTrace(io.Writer) error { return errors.New("conn: heartbeat tracing needs -tags hbtrace") }
