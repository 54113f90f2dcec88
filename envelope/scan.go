package envelope

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// status is the result of a scan step.
type status uint8

const (
	stOK     status = iota
	stSyntax        // not valid JSON at the returned offset
	stUTF8          // invalid UTF-8 inside a string at the returned offset
	stDepth         // nesting deeper than maxDepth
)

// skipWS returns the index of the first non-whitespace byte at or after i
// (len(b) if none).
func skipWS(b []byte, i int) int {
	for ; i < len(b); i++ {
		if c := b[i]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return i
		}
	}
	return i
}

// strPlain[c] is true for bytes that may appear in a JSON string as they are
// and need no further look: printable ASCII other than '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// scanString scans the JSON string starting at b[i] == '"' and returns the
// index just past its closing quote. It validates escapes and UTF-8.
func scanString(b []byte, i int) (int, status) {
	i++
	for {
		// Skip plain bytes, 8 at a time, then stop at the first byte that
		// needs a look: < 0x20, '"', '\\' or >= 0x80.
		for {
			if i+8 > len(b) {
				for i < len(b) && strPlain[b[i]] {
					i++
				}
				break
			}
			w := binary.LittleEndian.Uint64(b[i:])
			q := w ^ (lsb * '"')
			s := w ^ (lsb * '\\')
			// The classic "has a byte less than n" / "has a zero byte" tests,
			// or'ed with w for the high bits. The lowest flagged byte is
			// exact: only a matching byte can start a borrow, and the plain
			// bytes below it cannot.
			special := (((w - lsb*0x20) & ^w) | ((q - lsb) & ^q) | ((s - lsb) & ^s) | w) & msb
			if special != 0 {
				i += bits.TrailingZeros64(special) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return i, stSyntax
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, stOK
		case c == '\\':
			if i+1 >= len(b) {
				return i + 1, stSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return len(b), stSyntax
				}
				for k := i + 2; k < i+6; k++ {
					if unhex(b[k]) < 0 {
						return k, stSyntax
					}
				}
				i += 6
			default:
				return i + 1, stSyntax
			}
		case c < 0x20:
			return i, stSyntax
		default: // c >= 0x80: a multi-byte UTF-8 sequence
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, stUTF8
			}
			i += size
		}
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// scanNumber scans the JSON number starting at b[i] ('-' or a digit).
func scanNumber(b []byte, i int) (int, status) {
	if b[i] == '-' {
		i++
		if i >= len(b) {
			return i, stSyntax
		}
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, stSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, stSyntax
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, stSyntax
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, stOK
}

// skipValue validates the JSON value starting at b[i] (leading whitespace is
// skipped) and returns the index just past it. depth is the number of
// containers already open around the value.
func skipValue(b []byte, i, depth int) (int, status) {
	var kinds [maxDepth / 64]uint64 // bit set: that level is an object
	level := 0
	for {
		// A value is expected at i.
		i = skipWS(b, i)
		if i >= len(b) {
			return i, stSyntax
		}
		var st status
		switch c := b[i]; c {
		case '{', '[':
			if depth+level >= maxDepth {
				return i, stDepth
			}
			w, bit := level>>6, uint64(1)<<(level&63)
			level++
			i = skipWS(b, i+1)
			if c == '{' {
				kinds[w] |= bit
				if i < len(b) && b[i] == '}' {
					i++
					level--
					break
				}
				if i, st = objectKey(b, i); st != stOK {
					return i, st
				}
			} else {
				kinds[w] &^= bit
				if i < len(b) && b[i] == ']' {
					i++
					level--
					break
				}
			}
			continue
		case '"':
			i, st = scanString(b, i)
		case 't':
			if len(b)-i >= 4 && binary.LittleEndian.Uint32(b[i:]) == litTrue {
				i += 4
			} else {
				i, st = literal(b, i, "true")
			}
		case 'f':
			if len(b)-i >= 5 && binary.LittleEndian.Uint32(b[i:]) == litFals && b[i+4] == 'e' {
				i += 5
			} else {
				i, st = literal(b, i, "false")
			}
		case 'n':
			if len(b)-i >= 4 && binary.LittleEndian.Uint32(b[i:]) == litNull {
				i += 4
			} else {
				i, st = literal(b, i, "null")
			}
		default:
			if c == '-' || isDigit(c) {
				i, st = scanNumber(b, i)
			} else {
				st = stSyntax
			}
		}
		if st != stOK {
			return i, st
		}
		// A value ended at i: close containers until one continues.
		for {
			if level == 0 {
				return i, stOK
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, stSyntax
			}
			isObj := kinds[(level-1)>>6]&(1<<((level-1)&63)) != 0
			c := b[i]
			if c == ',' {
				i++
				if isObj {
					if i, st = objectKey(b, skipWS(b, i)); st != stOK {
						return i, st
					}
				}
				break
			}
			if (isObj && c == '}') || (!isObj && c == ']') {
				i++
				level--
				continue
			}
			return i, stSyntax
		}
	}
}

// skipDeep steps over the array or object at b[i] without a depth limit: it
// matches brackets by count only (not kind) and scans strings, so it does not
// validate the structure. It returns the index just past the value.
func skipDeep(b []byte, i int) (int, status) {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, stOK
			}
		case '"':
			e, st := scanString(b, i)
			if st != stOK {
				return e, st
			}
			i = e
			continue
		}
		i++
	}
	return i, stSyntax
}

// objectKey scans `"key" :` at b[i] and returns the index after the colon.
func objectKey(b []byte, i int) (int, status) {
	if i >= len(b) || b[i] != '"' {
		return i, stSyntax
	}
	i, st := scanString(b, i)
	if st != stOK {
		return i, st
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, stSyntax
	}
	return i + 1, stOK
}

// The literals' first four bytes as little-endian words: one compare
// instead of a string comparison per literal.
const (
	litTrue = 't' | 'r'<<8 | 'u'<<16 | 'e'<<24
	litFals = 'f' | 'a'<<8 | 'l'<<16 | 's'<<24
	litNull = 'n' | 'u'<<8 | 'l'<<16 | 'l'<<24
)

// literal checks the literal lit at b[i]; the error path of the word
// compares in skipValue.
func literal(b []byte, i int, lit string) (int, status) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		for k := 0; k < len(lit) && i < len(b) && b[i] == lit[k]; k++ {
			i++
		}
		return i, stSyntax
	}
	return i + len(lit), stOK
}

// appendUnescaped appends the unescaped value of in (the inside of a valid
// JSON string, without quotes) to dst. If limit >= 0 it stops once dst has
// grown by at least limit bytes. Unpaired surrogates become U+FFFD, like
// encoding/json.
func appendUnescaped(dst, in []byte, limit int) []byte {
	start := len(dst)
	for i := 0; i < len(in); {
		if limit >= 0 && len(dst)-start >= limit {
			return dst
		}
		c := in[i]
		if c != '\\' {
			j := i + 1
			for j < len(in) && in[j] != '\\' {
				j++
			}
			if limit >= 0 && j-i > limit {
				j = i + limit
			}
			dst = append(dst, in[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(in) {
			return dst
		}
		switch e := in[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(in, i+2)
			if !ok {
				return dst
			}
			i += 6
			if r >= 0xD800 && r < 0xDC00 {
				// High surrogate: combine with a following low one.
				if i+1 < len(in) && in[i] == '\\' && in[i+1] == 'u' {
					if r2, ok := hex4(in, i+2); ok && r2 >= 0xDC00 && r2 < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
						i += 6
						dst = utf8.AppendRune(dst, r)
						continue
					}
				}
				r = utf8.RuneError
			} else if r >= 0xDC00 && r < 0xE000 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}

func hex4(in []byte, i int) (rune, bool) {
	if i+4 > len(in) {
		return 0, false
	}
	var r rune
	for k := i; k < i+4; k++ {
		h := unhex(in[k])
		if h < 0 {
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
}
