package conn

import (
	"testing"
	"unsafe"
)

// An idle connection costs this struct: keep it in the 416-byte size class
// (see the layout note on Conn).
func TestConnSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("layout checked on 64-bit platforms")
	}
	if n := unsafe.Sizeof(Conn{}); n > 416 {
		t.Errorf("conn.Conn is %d bytes, more than the 416-byte size class", n)
	}
}
