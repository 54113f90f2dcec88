package envelope

// TraceparentLen is the length of a W3C Trace Context traceparent of
// version 00: "00-" + 32 hex digits of trace-id + "-" + 16 of parent-id +
// "-" + 2 of trace-flags.
const TraceparentLen = 55

// Traceparent checks s against the W3C Trace Context traceparent format
// (https://www.w3.org/TR/trace-context/#traceparent-header) and returns its
// first [TraceparentLen] bytes, the part every version shares, or false
// when it is not valid:
//
//	version "-" trace-id "-" parent-id "-" trace-flags
//	00      -   4bf92f3577b34da6a3ce929d0e0e4736 - 00f067aa0ba902b7 - 01
//
// Every field is lower-case hex of its exact length; version ff and
// all-zero trace-id or parent-id are invalid. Version 00 is exactly 55
// bytes long. A later version may be longer, and then goes on with "-"
// after the flags: what follows is dropped, as the specification says a
// parser of version 00 does. It does not allocate.
func Traceparent[T string | []byte](s T) (T, bool) {
	if len(s) < TraceparentLen || (len(s) > TraceparentLen && (s[0] == '0' && s[1] == '0' || s[TraceparentLen] != '-')) {
		return s[:0], false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return s[:0], false
	}
	if !lowerHex(s[0:2]) || (s[0] == 'f' && s[1] == 'f') ||
		!lowerHex(s[3:35]) || allZero(s[3:35]) ||
		!lowerHex(s[36:52]) || allZero(s[36:52]) ||
		!lowerHex(s[53:55]) {
		return s[:0], false
	}
	return s[:TraceparentLen], true
}

func lowerHex[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
