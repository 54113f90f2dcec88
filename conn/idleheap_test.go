//go:build !race

package conn_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"

	"github.com/wsactor/wsactor/conn"
)

// heapAlloc is the live heap after enough GCs for sync.Pool caches to have
// been dropped.
func heapAlloc() uint64 {
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// idleConns is how many connections the idle heap tests hold.
const idleConns = 200

// An idle server-role connection holds no read buffer: gws's 4 KiB
// bufio.Reader used to be the largest part of its heap; now the reads go
// through a pooled buffer held only while it has bytes gws has not read
// (readbuf.go). Each connection has read a frame, then idles; what it holds
// in all, with the test's own end of the socket, must stay under one read
// buffer. Without -race (it adds to the heap).
func TestIdleServerConnHoldsNoReadBuffer(t *testing.T) {
	h := frameHandler{got: make(chan struct{}, idleConns)}
	url, wg := serveGroup(t, h)
	frame := tinyFrame()

	socks := make([]net.Conn, 0, idleConns)
	base := heapAlloc()
	for range idleConns {
		nc := rawHandshake(t, url)
		socks = append(socks, nc)
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	for range idleConns {
		recv(t, h.got, "a frame")
	}
	per := (int64(heapAlloc()) - int64(base)) / idleConns
	t.Logf("heap per idle server connection (and the peer's socket): %d B", per)
	for _, nc := range socks {
		_ = nc.Close()
	}
	ended := make(chan struct{})
	go func() {
		wg.Wait()
		close(ended)
	}()
	recv(t, ended, "the read goroutines' end")
	checkIdleHeap(t, per)
}

// The same for the client role (conn.Dial): gws's client reader is small
// too. The server is a bare handshake on a socket, which then sends one
// frame and holds the socket.
func TestIdleClientConnHoldsNoReadBuffer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	var (
		mu    sync.Mutex
		peers []net.Conn
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range peers {
			_ = nc.Close()
		}
	}()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			peers = append(peers, nc)
			mu.Unlock()
			go bareAccept(nc)
		}
	}()
	url := "ws://" + ln.Addr().String() + "/primus"
	h := frameHandler{got: make(chan struct{}, idleConns)}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	clients := make([]*conn.Conn, 0, idleConns)
	var wg sync.WaitGroup
	defer func() {
		for _, c := range clients {
			_ = c.Abort()
		}
		wg.Wait()
	}()
	base := heapAlloc()
	for range idleConns {
		c, _, err := conn.Dial(ctx, url, nil, h, conn.Options{})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		wg.Add(1)
		go serveConn(c, &wg)
	}
	for range idleConns {
		recv(t, h.got, "a frame")
	}
	per := (int64(heapAlloc()) - int64(base)) / idleConns
	t.Logf("heap per idle client connection (and the peer's socket): %d B", per)
	checkIdleHeap(t, per)
}

func checkIdleHeap(t *testing.T, per int64) {
	t.Helper()
	if per < 512 {
		t.Fatalf("%d B per connection: fewer than its own structs; the measure is broken", per)
	}
	if per >= 4<<10 {
		t.Fatalf("an idle connection holds %d B of heap: more than a read buffer (4 KiB), which it should not hold while idle", per)
	}
}

// bareAccept answers a WebSocket handshake on nc, sends one text frame and
// leaves the socket open, holding nothing else.
func bareAccept(nc net.Conn) {
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		_ = nc.Close()
		return
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n" +
		"\x81\x07" + `{"a":1}`
	_, _ = nc.Write([]byte(resp))
}
