package conn

import (
	"bytes"
	"compress/flate"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"
)

// The FIFO against a slice, across growth and wrap-around.
func TestBitQueue(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var q bitQueue
	var ref []bool
	for range 20000 {
		if rng.IntN(3) > 0 || len(ref) == 0 {
			b := rng.IntN(2) == 0
			q.push(b)
			ref = append(ref, b)
		} else {
			b, ok := q.pop()
			if !ok || b != ref[0] {
				t.Fatalf("pop %v %v, want %v", b, ok, ref[0])
			}
			ref = ref[1:]
		}
		if int(q.n) != len(ref) {
			t.Fatalf("n %d, want %d", q.n, len(ref))
		}
	}
	for len(ref) > 0 {
		b, ok := q.pop()
		if !ok || b != ref[0] {
			t.Fatalf("drain: pop %v %v, want %v", b, ok, ref[0])
		}
		ref = ref[1:]
	}
	if _, ok := q.pop(); ok || len(q.w) > 1 {
		t.Fatalf("empty queue: pop ok %v, %d words kept", ok, len(q.w))
	}
}

// A zip bomb (16 MiB of zeros in about 16 KiB) is refused after
// inflating about the limit: what inflate allocates stays within a few
// times the limit, far from the inflated size.
func TestInflateStopsAtTheLimit(t *testing.T) {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 16 {
		_, _ = w.Write(zeros)
	}
	_ = w.Flush()
	bomb := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	const limit = 64 << 10
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC() // empties the pools: the flate reader and the buffer are counted
	runtime.ReadMemStats(&before)
	_, err := inflate(bomb, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("inflate: %v, want ErrTooLarge", err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte bomb of 16 MiB: %d bytes allocated to refuse it at %d", len(bomb), alloc, limit)
	if alloc > 4*limit {
		t.Fatalf("inflate allocated %d bytes for a limit of %d", alloc, limit)
	}
}

// Messages of every size up to the limit inflate intact; one byte over
// is refused.
func TestInflateSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const limit = 5000
	for _, n := range []int{0, 1, 100, 511, 512, 4095, 4999, 5000, 5001} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = "abcdef"[rng.IntN(6)]
		}
		z, cz, _ := deflate(msg, 1)
		z = bytes.Clone(z)
		putCompressor(cz, 1)
		bp, err := inflate(z, limit)
		if n > limit {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes: %v, want ErrTooLarge", n, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(*bp, msg) {
			t.Fatalf("%d bytes: err %v, equal %v", n, err, err == nil && bytes.Equal(*bp, msg))
		}
		putInflateBuf(bp)
	}
}

// The CPU of one compressed 4 KiB JSON message: deflate (level 1) and
// inflate, with the pools warm.
func BenchmarkDeflate4KiB(b *testing.B) {
	msg := []byte(`{"op":"echo","user":"alice","seq":12345,"items":[`)
	for i := 0; len(msg) < 4000; i++ {
		msg = append(msg, `{"id":`...)
		msg = append(msg, byte('0'+i%10))
		msg = append(msg, `,"name":"item","price":12.5,"tags":["a","b"]},`...)
	}
	z, cz, _ := deflate(msg, 1)
	z = bytes.Clone(z)
	putCompressor(cz, 1)
	b.Run("deflate", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, cz, _ := deflate(msg, 1)
			putCompressor(cz, 1)
		}
		b.ReportMetric(float64(len(z)), "bytes/msg")
	})
	b.Run("inflate", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			bp, err := inflate(z, 64<<10)
			if err != nil {
				b.Fatal(err)
			}
			putInflateBuf(bp)
		}
	})
}
