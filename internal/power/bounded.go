package power

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Limits on one message of a sample stream. Arrow's own message reader
// allocates whatever a message's header claims (up to 2 GiB of metadata, any
// body length) before reading a byte of it, so a damaged or hostile file of a
// few bytes could exhaust memory. The stream llem-sample writes has a schema
// of a few KiB and batches of a few MiB at most (it flushes every second or
// so); these limits are far above that.
const (
	MaxMessageMeta = 16 << 20  // bytes of one message's flatbuffer metadata
	MaxMessageBody = 512 << 20 // bytes of one record batch body
)

// newIPCReader is ipc.NewReader with the limits above: Reader, the one
// reader of sample streams, goes through it, since a run directory is
// writable by its worker.
func newIPCReader(in io.Reader) (*ipc.Reader, error) {
	alloc := &boundedAlloc{}
	alloc.setBody(0)
	return ipc.NewReaderFromMessageReader(&boundedMessages{r: in, alloc: alloc}, ipc.WithAllocator(alloc))
}

// boundedMessages reads Arrow IPC stream messages like ipc.NewMessageReader,
// but refuses lengths beyond the limits above and grows its buffers with the
// bytes actually present, so memory use is bounded by the file's real size.
type boundedMessages struct {
	r     io.Reader
	msg   *ipc.Message
	alloc *boundedAlloc
}

// boundedAlloc is the allocator Arrow decodes batches with. Arrow sizes each
// column buffer from the batch's metadata and allocates it before copying
// (or decompressing) the body into it; this allocator refuses any single
// allocation larger than the current message's body allows, so a claimed
// size the file does not back panics inside Arrow (which reports a panic
// while reading as an error) instead of exhausting memory.
type boundedAlloc struct {
	memory.GoAllocator
	limit int
}

// compressionRatio bounds how much a compressed body may expand (llem-sample
// does not compress; other writers of the format may).
const compressionRatio = 64

func (a *boundedAlloc) setBody(n int64) {
	l := n * compressionRatio
	if l < 1<<20 {
		l = 1 << 20
	}
	if l > MaxMessageBody {
		l = MaxMessageBody
	}
	a.limit = int(l)
}

func (a *boundedAlloc) Allocate(size int) []byte {
	if size > a.limit {
		panic(fmt.Sprintf("a buffer of %d bytes in a message body that allows %d", size, a.limit))
	}
	return a.GoAllocator.Allocate(size)
}

func (a *boundedAlloc) Reallocate(size int, b []byte) []byte {
	if size > a.limit {
		panic(fmt.Sprintf("a buffer of %d bytes in a message body that allows %d", size, a.limit))
	}
	return a.GoAllocator.Reallocate(size, b)
}

func (b *boundedMessages) Retain()  {}
func (b *boundedMessages) Release() { b.drop() }

func (b *boundedMessages) drop() {
	if b.msg != nil {
		b.msg.Release()
		b.msg = nil
	}
}

// readN reads exactly n bytes, allocating as they arrive rather than up
// front. A short read is io.ErrUnexpectedEOF (io.EOF when nothing came).
func readN(r io.Reader, n int64) ([]byte, error) {
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, n)
	if err == io.EOF && got > 0 {
		err = io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

func (b *boundedMessages) Message() (msg *ipc.Message, err error) {
	b.drop()
	var pre [4]byte
	if _, err := io.ReadFull(b.r, pre[:]); err != nil {
		return nil, fmt.Errorf("could not read continuation indicator: %w", err)
	}
	n := binary.LittleEndian.Uint32(pre[:])
	if n == 0xFFFFFFFF { // continuation token, then the length
		if _, err := io.ReadFull(b.r, pre[:]); err != nil {
			return nil, fmt.Errorf("could not read message length: %w", eofIsCut(err))
		}
		n = binary.LittleEndian.Uint32(pre[:])
	}
	if n == 0 {
		return nil, io.EOF // end-of-stream marker
	}
	if n > MaxMessageMeta {
		return nil, fmt.Errorf("message metadata of %d bytes is over the limit of %d", n, MaxMessageMeta)
	}
	meta, err := readN(b.r, int64(n))
	if err != nil {
		return nil, fmt.Errorf("could not read message metadata: %w", eofIsCut(err))
	}
	// Flatbuffer accessors index the bytes without bounds checks of their
	// own: garbage metadata panics, which is a malformed stream, not a crash.
	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, fmt.Errorf("malformed message metadata (%v)", p)
		}
	}()
	head := ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(nil))
	bodyLen, typ := head.BodyLen(), head.Type()
	head.Release()
	if typ == ipc.MessageSchema {
		if err := checkSchemaMeta(meta); err != nil {
			return nil, err
		}
	}
	if bodyLen < 0 || bodyLen > MaxMessageBody {
		return nil, fmt.Errorf("message body of %d bytes is outside the limit of %d", bodyLen, MaxMessageBody)
	}
	body, err := readN(b.r, bodyLen)
	if err != nil {
		return nil, fmt.Errorf("could not read message body: %w", eofIsCut(err))
	}
	b.alloc.setBody(bodyLen)
	b.msg = ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(body))
	return b.msg, nil
}

// eofIsCut: inside a message, even no byte at all means the stream was cut,
// not that it ended cleanly.
func eofIsCut(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
