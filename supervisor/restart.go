package supervisor

import "strconv"

// RestartType says when a [Supervisor] restarts its child after the child
// returns. The zero value is [Permanent].
type RestartType int

const (
	// Permanent children are always restarted, also after they return nil.
	// A client connection that must reconnect is Permanent.
	Permanent RestartType = iota
	// Transient children are restarted only when they fail: return a
	// non-nil error or panic. Returning nil ends supervision.
	Transient
	// Temporary children are never restarted. A server connection whose
	// socket is gone is Temporary.
	Temporary
)

// String returns "Permanent", "Transient", "Temporary" or
// "RestartType(n)" for a value outside the three.
func (t RestartType) String() string {
	switch t {
	case Permanent:
		return "Permanent"
	case Transient:
		return "Transient"
	case Temporary:
		return "Temporary"
	default:
		return "RestartType(" + strconv.Itoa(int(t)) + ")"
	}
}

func (t RestartType) valid() bool { return t >= Permanent && t <= Temporary }
