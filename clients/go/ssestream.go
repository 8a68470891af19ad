package chattts

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
)

// sseCall is what the two SSE streams (Stream, SpeechStream) share: the call, its current
// attempt with the decoder between the attempt's body and its events, what reached the
// caller, and the stream's end: the same content type check, error details, breaker
// accounting and log record for both.
//
// Next runs on the caller's goroutine and Close may run on another: the decoder, the queue
// and the reads of the body belong to Next; mu guards what both touch (the counts, the
// stream's last event, the end and its error). Next never holds mu while it waits for
// the network, so Close can always take it and close the connection under Next.
type sseCall struct {
	cl        *call
	a         *attempt
	dec       SSEDecoder
	queue     []SSEEvent
	qi        int
	buf       []byte
	bytesAttr string // the log's name for the audio bytes

	ended atomic.Bool // set under mu; Next's quick check reads it without
	mu    sync.Mutex
	// under mu:
	events    int   // events that reached the caller
	chunks    int   // of them, audio
	bytes     int64 // audio bytes that reached the caller
	completed bool  // the stream's last event arrived
	audioMS   int64 // the audio duration to log (-1: none)
	err       error // what ended the stream
}

// openSSE starts the stream call s (Accept: text/event-stream) on b: each attempt that
// answers replaces the previous one (closed), has its content type checked, and first
// reads its first event, inside the retry loop, so openSSE returns once an event arrived
// and nothing is retried after. A failure is logged and returned.
func (c *Client) openSSE(ctx context.Context, s *spec, b *sseCall, bytesAttr string, first func() error) error {
	s.accept = "text/event-stream"
	cl, err := c.newCall(ctx, s)
	if err != nil {
		return err
	}
	b.cl, b.buf, b.bytesAttr, b.audioMS = cl, make([]byte, 32<<10), bytesAttr, -1
	s.handle = func(a *attempt) error {
		if b.a != nil {
			b.a.close()
		}
		b.a, b.dec, b.queue, b.qi = a, SSEDecoder{}, b.queue[:0], 0
		if err := a.expectType("text/event-stream"); err != nil {
			return err
		}
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
				return SSEEvent{}, b.annotate(derr)
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

// annotate gives an error found in the stream what the call knows: an in-stream
// *APIError its endpoint and (when the server's body had none) the request id, a
// *ProtocolError the request id.
func (b *sseCall) annotate(err error) error {
	var api *APIError
	if errors.As(err, &api) {
		api.Endpoint = b.a.ep.display
		if api.RequestID == "" {
			api.RequestID = b.a.requestID()
		}
	}
	var pe *ProtocolError
	if errors.As(err, &pe) && pe.RequestID == "" {
		pe.RequestID = b.a.requestID()
	}
	return err
}

// deliver counts an event that reaches the caller (audio: n bytes of audio) and runs keep
// (nil: none) under mu; false when the stream ended meanwhile (Close on another
// goroutine): the event is dropped.
func (b *sseCall) deliver(audio bool, n int, keep func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended.Load() {
		return false
	}
	b.events++
	if audio {
		b.chunks++
		b.bytes += int64(n)
	}
	if keep != nil {
		keep()
	}
	return true
}

// complete records that the stream's last event arrived, running keep under mu.
func (b *sseCall) complete(keep func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ended.Load() {
		b.completed = true
		keep()
	}
}

func (b *sseCall) isCompleted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.completed
}

// endCompleted ends a stream whose last event arrived: the rest of the body is read (so
// the connection is reused), and the stream completes.
func (b *sseCall) endCompleted() {
	_, _ = io.CopyN(io.Discard, b.a.body, 64<<10)
	b.end(nil)
}

// end ends the stream, once: err (nil: it completed, or the caller closed it) becomes a
// *StreamInterruptedError when events had reached the caller (a caller's cancel stays as
// it is) and is what Err reports; the connection is closed; a failure that is the
// server's counts against the endpoint's breaker; the call is logged.
func (b *sseCall) end(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended.Load() {
		return
	}
	b.ended.Store(true)
	if err != nil && !isCallerCancel(err) && b.events > 0 {
		err = &StreamInterruptedError{BytesReceived: b.bytes, ChunksReceived: b.chunks, RequestID: b.cl.id, Err: err}
	}
	b.err = err
	if b.a != nil {
		b.a.close()
		if serverFault(err) {
			b.a.ep.br.failure(b.cl.c.clock.Now())
		}
	}
	b.cl.finish(err, b.audioMS, false, slog.Int64(b.bytesAttr, b.bytes), slog.Bool("completed", b.completed))
}

// endErr is what ended the stream (nil while it runs, or when it completed or was closed).
func (b *sseCall) endErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
