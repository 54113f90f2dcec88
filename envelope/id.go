package envelope

import (
	"crypto/rand"
	"sync"
)

// ID is a request id: an RFC 4122 version 4 UUID. Its JSON form is the
// quoted, lower-case 36-character string. The zero value is the nil UUID,
// which NewID never returns. ID is a comparable value, usable as a map key.
type ID [16]byte

// NewID returns a new random (version 4) ID. Its 122 random bits come from
// crypto/rand, so ids cannot be guessed. It is safe for concurrent use and
// does not allocate.
//
// crypto/rand is read 1 KiB at a time into blocks kept in a sync.Pool (one in
// use per goroutine at a time); each 16 bytes handed out are zeroed in the
// block, so no two ids share random bytes. This halves the cost of reading
// crypto/rand per id (see BenchmarkNewID) without touching process-global
// settings such as uuid.EnableRandPool.
func NewID() ID {
	var id ID
	r := randBlocks.Get().(*randBlock)
	if r.n+len(id) > len(r.b) {
		_, _ = rand.Read(r.b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
		r.n = 0
	}
	copy(id[:], r.b[r.n:])
	clear(r.b[r.n : r.n+len(id)])
	r.n += len(id)
	randBlocks.Put(r)
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // variant RFC 4122
	return id
}

// randBlock is a block of crypto/rand output, used from b[n:].
type randBlock struct {
	b [1024]byte
	n int
}

var randBlocks = sync.Pool{New: func() any { return &randBlock{n: len(randBlock{}.b)} }}

// String returns the canonical form "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
func (id ID) String() string {
	var buf [38]byte
	id.AppendJSON(buf[:0])
	return string(buf[1:37])
}

// AppendJSON appends the quoted canonical form of id to dst and returns the
// extended slice. It does not allocate when dst has room.
func (id ID) AppendJSON(dst []byte) []byte {
	var buf [38]byte
	buf[0], buf[37] = '"', '"'
	j := 1
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j], buf[j+1] = hexDigits[c>>4], hexDigits[c&0xF]
		j += 2
	}
	return append(dst, buf[:]...)
}

// ParseID parses a raw JSON id of the form `"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"`
// (quoted, hex digits of either case) without allocating. It reports false
// for anything else. It does not check the version and variant bits.
func ParseID(raw []byte) (ID, bool) {
	var id ID
	if len(raw) != 38 || raw[0] != '"' || raw[37] != '"' ||
		raw[9] != '-' || raw[14] != '-' || raw[19] != '-' || raw[24] != '-' {
		return id, false
	}
	var bad byte
	for i, j := range idHexPos {
		hi, lo := hexVal[raw[j]], hexVal[raw[j+1]]
		bad |= hi | lo
		id[i] = hi<<4 | lo
	}
	if bad&0x80 != 0 {
		return ID{}, false
	}
	return id, true
}

// idHexPos[i] is the offset in the quoted form of the two hex digits of byte i.
var idHexPos = [16]uint8{1, 3, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27, 29, 31, 33, 35}

// hexVal maps a hex digit to its value and any other byte to 0xff.
var hexVal = func() (t [256]byte) {
	for c := range t {
		t[c] = 0xff
		if v := unhex(byte(c)); v >= 0 {
			t[c] = byte(v)
		}
	}
	return t
}()
