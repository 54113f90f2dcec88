package envelope

import (
	"bufio"
	"crypto/rand"
	"sync"

	"github.com/google/uuid"
)

// ID is a request id: an RFC 4122 version 4 UUID, the [uuid.UUID] of
// github.com/google/uuid. Its JSON form ([AppendID]) is the quoted,
// lower-case 36-character string. The zero value is [uuid.Nil], which NewID
// never returns. ID is a comparable value, usable as a map key.
type ID = uuid.UUID

// NewID returns a new random (version 4) ID made by
// [uuid.NewRandomFromReader]. Its 122 random bits come from crypto/rand, so
// ids cannot be guessed. It is safe for concurrent use.
//
// The reader is a bufio.Reader over crypto/rand.Reader that reads 1 KiB (64
// ids) at a time; the readers are kept in a sync.Pool. A bufio.Reader is not
// safe for concurrent use, and none is shared: a goroutine owns the reader
// it took from the pool until it puts it back, and each id consumes its 16
// bytes from the buffer, so no two ids share random bytes. This is cheaper
// than one crypto/rand read per id ([uuid.New]; see BenchmarkNewID) without
// touching process-global settings such as [uuid.EnableRandPool], whose
// single pool is guarded by one mutex.
func NewID() ID {
	r := randReaders.Get().(*bufio.Reader)
	id, err := uuid.NewRandomFromReader(r)
	randReaders.Put(r)
	if err != nil {
		// crypto/rand.Reader never fails (Go 1.24+: it crashes the program
		// instead), so neither does a bufio.Reader over it.
		panic("envelope: reading crypto/rand: " + err.Error())
	}
	return id
}

// randBufSize is the size of a pooled reader's buffer: 64 ids per read of
// crypto/rand.
const randBufSize = 64 * len(ID{})

var randReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(rand.Reader, randBufSize) }}

// AppendID appends the quoted canonical form of id,
// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" in lower case, to dst and returns
// the extended slice. It does not allocate when dst has room (uuid.UUID's
// String and MarshalText do).
func AppendID(dst []byte, id ID) []byte {
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
// (quoted, hex digits of either case) with [uuid.ParseBytes]. It reports
// false for anything else, and does not allocate unless the 36 bytes between
// the quotes are not a UUID. It does not check the version and variant bits.
func ParseID(raw []byte) (ID, bool) {
	// uuid.ParseBytes also takes the urn:uuid:, braced and undashed forms,
	// and does not look at the braces' bytes: only the bare form inside
	// quotes is an id here.
	if len(raw) != 38 || raw[0] != '"' || raw[37] != '"' {
		return ID{}, false
	}
	id, err := uuid.ParseBytes(raw[1:37])
	if err != nil {
		return ID{}, false
	}
	return id, true
}
