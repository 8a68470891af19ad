package chattts

import (
	"errors"
	"io"
	"sync"
)

// ring is a fixed-size byte ring buffer; no locking, no blocking.
type ring struct {
	buf  []byte
	r, n int // read position, bytes held
}

func newRing(size int) *ring { return &ring{buf: make([]byte, size)} }

func (b *ring) free() int { return len(b.buf) - b.n }

// write copies as much of p as fits and returns how much that was.
func (b *ring) write(p []byte) int {
	total := 0
	for len(p) > 0 && b.free() > 0 {
		w := (b.r + b.n) % len(b.buf)
		end := len(b.buf)
		if w < b.r {
			end = b.r
		}
		k := copy(b.buf[w:end], p)
		b.n += k
		p = p[k:]
		total += k
	}
	return total
}

// read copies up to len(p) held bytes into p.
func (b *ring) read(p []byte) int {
	total := 0
	for len(p) > 0 && b.n > 0 {
		end := min(b.r+b.n, len(b.buf))
		k := copy(p, b.buf[b.r:end])
		b.r = (b.r + k) % len(b.buf)
		b.n -= k
		p = p[k:]
		total += k
	}
	if b.n == 0 {
		b.r = 0
	}
	return total
}

// ringPipe is io.Pipe with a bounded ring buffer in it: Write blocks only while the buffer
// is full (backpressure: the writer, which reads the network, waits for the reader), Read
// blocks while it is empty. Memory is the buffer, whatever the speeds.
type ringPipe struct {
	mu       sync.Mutex
	canRead  *sync.Cond
	canWrite *sync.Cond
	ring     *ring
	werr     error // set by CloseWithError: what Read returns once drained
	rclosed  bool  // the reader closed: writes fail
	aborted  bool  // abort: the buffer is gone, writes fail
}

// errPipeAborted is what Write returns after abort.
var errPipeAborted = errors.New("chattts: stream aborted")

func newRingPipe(size int) *ringPipe {
	p := &ringPipe{ring: newRing(size)}
	p.canRead = sync.NewCond(&p.mu)
	p.canWrite = sync.NewCond(&p.mu)
	return p
}

// Write blocks until all of b is buffered, the reader closed (io.ErrClosedPipe) or the
// pipe was aborted (errPipeAborted).
func (p *ringPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	total := 0
	for len(b) > 0 {
		if p.rclosed {
			return total, io.ErrClosedPipe
		}
		if p.aborted {
			return total, errPipeAborted
		}
		if p.werr != nil {
			return total, io.ErrClosedPipe
		}
		k := p.ring.write(b)
		if k == 0 {
			p.canWrite.Wait()
			continue
		}
		total += k
		b = b[k:]
		p.canRead.Signal()
	}
	return total, nil
}

// CloseWithError ends the writing side: Read returns err (io.EOF for nil) once drained.
func (p *ringPipe) CloseWithError(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.werr == nil {
		p.werr = err
	}
	p.canRead.Broadcast()
}

// Read blocks until bytes are buffered or the writer closed.
func (p *ringPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.rclosed {
			return 0, io.ErrClosedPipe
		}
		if p.ring.n > 0 {
			k := p.ring.read(b)
			p.canWrite.Signal()
			return k, nil
		}
		if p.werr != nil {
			return 0, p.werr
		}
		if len(b) == 0 {
			return 0, nil
		}
		p.canRead.Wait()
	}
}

// closeRead ends the reading side: blocked and later writes fail.
func (p *ringPipe) closeRead() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rclosed = true
	p.canWrite.Broadcast()
	p.canRead.Broadcast()
}

// abort ends the pipe at once, whatever the reader does (the stream's context ended):
// the buffered bytes are dropped and their memory freed, a blocked or later Write fails
// with errPipeAborted, and Read returns what CloseWithError gives.
func (p *ringPipe) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.aborted = true
	p.ring = &ring{} // no buffer: holds nothing, takes nothing
	p.canWrite.Broadcast()
	p.canRead.Broadcast()
}

// buffered is how many bytes the pipe holds.
func (p *ringPipe) buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ring.n
}
