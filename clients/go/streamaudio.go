package chattts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
)

// AudioStream is synthesized audio as it is made: an io.ReadCloser of the file in the
// requested format (a WAV stream has the streaming header: unknown sizes). Between the
// network and Read sits a bounded ring buffer (WithStreamBuffer): when the reader is slow
// the client stops reading the network, TCP pushes back to the server, and memory stays
// at the buffer's size. (The server cuts a client that reads nothing for send_timeout_s,
// 30 s by default.) When the context ends, the stream ends at once, even while nobody
// reads: the connection is closed, the buffered bytes are dropped and Read returns the
// context's error.
type AudioStream struct {
	Format      string
	ContentType string
	SampleRate  int
	RequestID   string
	Endpoint    string
	// Fallback: this is the configured fallback audio (StreamAudio also returned a
	// *FallbackError).
	Fallback bool

	r        io.Reader // the pipe, or the fallback's bytes
	pipe     *ringPipe
	a        *attempt
	cl       *call
	first    []byte
	received atomic.Int64
	byCaller atomic.Bool
	// stopAbort stops the context watch that aborts the pipe; false when it already fired.
	stopAbort func() bool
	finished  chan struct{}
	once      sync.Once
}

// StreamAudio synthesizes req as a stream of audio bytes in req.Format (default wav; the
// format is sent explicitly, with the matching Accept). It returns once the first bytes
// arrived, retrying per the policy until then; a failure after that is returned by Read
// as a *StreamInterruptedError. Cancelling ctx or calling Close ends the stream and
// closes the connection. With fallback audio configured, a server that cannot answer
// gives the fallback (AudioStream.Fallback) and a *FallbackError.
func (c *Client) StreamAudio(ctx context.Context, req *TTSRequest, opts ...CallOption) (*AudioStream, error) {
	if req != nil && req.Format == "" {
		r := *req
		r.Format = "wav"
		req = &r
	}
	s, err := c.ttsSpec("stream_audio", req, true, opts)
	if err != nil {
		return nil, err
	}
	s.accept = formatTypes[req.Format]
	return c.audioStream(ctx, s)
}

func (c *Client) audioStream(ctx context.Context, s *spec) (*AudioStream, error) {
	cl, err := c.newCall(ctx, s)
	if err != nil {
		return nil, err
	}
	as := &AudioStream{cl: cl, finished: make(chan struct{})}
	s.handle = func(a *attempt) error {
		if err := a.expectType("audio/"); err != nil {
			return err
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := a.body.Read(buf)
			if n > 0 {
				as.first = buf[:n]
				return nil
			}
			if err == io.EOF {
				as.first = nil
				return nil // an empty body: the stream simply ends
			}
			if err != nil {
				return err
			}
		}
	}
	a, err := cl.run()
	if err != nil {
		fb, ferr := cl.fail(err, true)
		if fb == nil {
			return nil, ferr
		}
		close(as.finished)
		as.Format, as.SampleRate, as.Fallback = fb.Format, fb.SampleRate, true
		as.ContentType = formatTypes[fb.Format]
		as.r = bytes.NewReader(fb.Data)
		return as, ferr
	}
	h := a.resp.Header
	as.a, as.pipe = a, newRingPipe(c.streamBuf)
	as.r = as.pipe
	as.ContentType, as.Format = h.Get("Content-Type"), formatOf(h.Get("Content-Type"), "")
	as.SampleRate, _ = strconv.Atoi(h.Get("X-Sample-Rate"))
	as.RequestID, as.Endpoint = h.Get("X-Request-ID"), a.ep.display
	// the pump may wait on the reader (a full buffer) rather than on the network, where the
	// transport would see the cancel: the context's end aborts the pipe to wake it
	as.stopAbort = context.AfterFunc(cl.ctx, as.pipe.abort)
	go as.pump()
	return as, nil
}

// pump copies the body into the ring pipe; the pipe's Write blocks while it is full, until
// the reader reads, closes, or the context ends (abort).
func (as *AudioStream) pump() {
	defer close(as.finished)
	var err error
	aborted := false // the context's end woke a write that waited on the reader
	put := func(p []byte) {
		if err = as.put(p); errors.Is(err, errPipeAborted) {
			aborted = true
			err = as.cl.transportError(as.a.ep, as.cl.ctx.Err(), as.a.body.dog, true)
		}
	}
	if len(as.first) > 0 {
		put(as.first)
	}
	buf := as.first[:cap(as.first)]
	if len(buf) == 0 {
		buf = make([]byte, 32<<10)
	}
	as.first = nil
	for err == nil {
		n, rerr := as.a.body.Read(buf)
		if n > 0 {
			put(buf[:n])
		}
		if rerr != nil && err == nil {
			err = rerr
		}
	}
	if err == io.EOF {
		err = nil
	}
	if !as.stopAbort() && err == nil {
		// the context ended as the body did: the buffered bytes may be gone, the stream
		// is not complete
		aborted = true
		err = as.cl.transportError(as.a.ep, as.cl.ctx.Err(), as.a.body.dog, true)
	}
	if as.byCaller.Load() || (err != nil && isCallerCancel(err)) {
		err = context.Canceled
		if ctxErr := as.cl.ctx.Err(); ctxErr != nil && !as.byCaller.Load() {
			err = ctxErr
		}
	} else if err != nil {
		err = &StreamInterruptedError{BytesReceived: as.received.Load(), RequestID: as.cl.id, Err: err}
		if serverFault(err) && !aborted { // not when it was the reader that stalled
			as.a.ep.br.failure(as.cl.c.clock.Now())
		}
	}
	as.pipe.CloseWithError(err)
	as.a.close()
	audioMS := int64(-1)
	if as.SampleRate > 0 && (as.Format == "wav" || as.Format == "pcm") {
		n := as.received.Load()
		if as.Format == "wav" {
			n -= WAVHeaderSize
		}
		audioMS = max(n, 0) / 2 * 1000 / int64(as.SampleRate)
	}
	logErr := err
	if as.byCaller.Load() {
		logErr = nil // the caller stopped reading: its choice, not a failure
	}
	as.cl.finish(logErr, audioMS, false)
}

func (as *AudioStream) put(p []byte) error {
	n, err := as.pipe.Write(p)
	as.received.Add(int64(n))
	if errors.Is(err, io.ErrClosedPipe) {
		return context.Canceled // the reader closed
	}
	return err
}

// Read reads the audio bytes.
func (as *AudioStream) Read(p []byte) (int, error) { return as.r.Read(p) }

// Close ends the stream and closes the connection; it returns once the stream's
// goroutine has finished.
func (as *AudioStream) Close() error {
	as.once.Do(func() {
		if as.pipe == nil {
			return
		}
		as.byCaller.Store(true)
		as.pipe.closeRead()
		as.a.close()
	})
	<-as.finished
	return nil
}

// Buffered is how many bytes wait in the ring buffer for Read.
func (as *AudioStream) Buffered() int {
	if as.pipe == nil {
		return 0
	}
	return as.pipe.buffered()
}
