package chattts

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
)

// sseCall is what the two SSE streams (Stream, SpeechStream) share: the call, its current
// attempt with the decoder between the attempt's body and its events, what reached the
// caller, and the stream's end.
type sseCall struct {
	cl    *call
	a     *attempt
	dec   SSEDecoder
	queue []SSEEvent
	qi    int
	buf   []byte

	events int   // events that reached the caller
	bytes  int64 // audio bytes that reached the caller
	err    error // what ended the stream
	ended  atomic.Bool
	endMu  sync.Mutex
}

// openSSE starts the stream call s (Accept: text/event-stream) on b: each attempt that
// answers replaces the previous one (closed) and first reads its first event, inside the
// retry loop, so openSSE returns once an event arrived and nothing is retried after. A
// failure is logged and returned.
func (c *Client) openSSE(ctx context.Context, s *spec, b *sseCall, first func() error) error {
	s.accept = "text/event-stream"
	cl, err := c.newCall(ctx, s)
	if err != nil {
		return err
	}
	b.cl, b.buf = cl, make([]byte, 32<<10)
	s.handle = func(a *attempt) error {
		if b.a != nil {
			b.a.close()
		}
		b.a, b.dec, b.queue, b.qi = a, SSEDecoder{}, b.queue[:0], 0
		return first()
	}
	if _, err := cl.run(); err != nil {
		_, err = cl.fail(err, false)
		return err
	}
	return nil
}

// next returns the attempt's next event, reading its body as needed. A body that ends
// without the stream's last event is a *TransportError (io.ErrUnexpectedEOF).
func (b *sseCall) next() (SSEEvent, error) {
	for b.qi >= len(b.queue) {
		b.queue, b.qi = b.queue[:0], 0
		n, err := b.a.body.Read(b.buf)
		if n > 0 {
			var derr error
			if b.queue, derr = b.dec.Append(b.queue, b.buf[:n]); derr != nil {
				return SSEEvent{}, derr
			}
		}
		if err == io.EOF && len(b.queue) == 0 {
			return SSEEvent{}, &TransportError{Op: b.cl.name(), Endpoint: b.a.ep.display, RequestSent: true,
				RequestID: b.cl.id, Err: io.ErrUnexpectedEOF}
		}
		if err != nil && err != io.EOF {
			return SSEEvent{}, err
		}
	}
	raw := b.queue[b.qi]
	b.qi++
	return raw, nil
}

// stop ends the stream, once: err (nil: it completed, or the caller closed it) becomes a
// *StreamInterruptedError when events had reached the caller (a caller's cancel stays as
// it is) and is what Err reports; the connection is closed; then record logs the call.
func (b *sseCall) stop(err error, chunks int, record func(err error)) {
	b.endMu.Lock()
	defer b.endMu.Unlock()
	if b.ended.Load() {
		return
	}
	b.ended.Store(true)
	if err != nil && !isCallerCancel(err) && b.events > 0 {
		err = &StreamInterruptedError{BytesReceived: b.bytes, ChunksReceived: chunks, RequestID: b.cl.id, Err: err}
	}
	b.err = err
	if b.a != nil {
		b.a.close()
	}
	record(err)
}
