package serve

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/llem/llem/internal/native"
)

// limitListener accepts at most n connections at once: Accept waits for a
// connection to close before it takes the next from the kernel's backlog.
// With the header and idle timeouts this bounds the memory any number of
// idle or half-open clients can hold.
type limitListener struct {
	net.Listener
	sem    chan struct{}
	sndbuf int
	open   atomic.Int64
	peak   atomic.Int64
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok && l.sndbuf > 0 {
		_ = tc.SetWriteBuffer(l.sndbuf)
	}
	n := l.open.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &limitConn{Conn: c, l: l}, nil
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.sem
	})
	return err
}

// defaultKVTokens is the KV budget when none is given: the positions a
// quarter of the available memory holds, at most every slot at full
// length, at least one full-length sequence.
func defaultKVTokens(m *native.Model, slots, modelLen int) int {
	full := slots * modelLen
	avail, ok := memAvailable()
	if !ok {
		return full
	}
	n := avail / 4 / native.KVBytesPerToken(m)
	return int(max(min(n, int64(full)), int64(modelLen)))
}

// memAvailable reads MemAvailable from /proc/meminfo (Linux).
func memAvailable() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "MemAvailable:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}
