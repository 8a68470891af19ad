package chattts

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
)

// Audio is a whole audio file.
type Audio struct {
	Data        []byte
	Format      string // wav, pcm, mp3, opus, flac, aac
	ContentType string
	SampleRate  int
	DurationMS  int64 // from X-Audio-Duration-Ms (or the fallback's WAV header); 0 if unknown
	RequestID   string
	TraceID     string // the W3C trace the call was a span of (its traceparent)
	Endpoint    string
	// IgnoredFields are request fields the server ignored (X-Ignored-Fields).
	IgnoredFields []string
	// VoiceWarning is the server's X-Voice-Warning (a saved voice made with other weights).
	VoiceWarning string
	// Fallback: this is the configured fallback audio, not the server's synthesis.
	Fallback bool
}

// PCM returns the audio's 16-bit samples: the data chunk of a WAV file, or the bytes of a
// pcm one. Other formats need a decoder this package does not have.
func (a *Audio) PCM() ([]byte, error) {
	switch a.Format {
	case "pcm":
		return a.Data, nil
	case "wav":
		_, pcm, err := DecodeWAV(a.Data)
		return pcm, err
	}
	return nil, fmt.Errorf("chattts: no PCM decoder for %s audio", a.Format)
}

var formatTypes = map[string]string{
	"wav": "audio/wav", "pcm": "audio/pcm", "mp3": "audio/mpeg", "opus": "audio/ogg",
	"flac": "audio/flac", "aac": "audio/aac",
}

// ttsSpec is the call of POST /v1/tts for req, validated first (unless turned off); stream
// adds the stream flag to the body and the query.
func (c *Client) ttsSpec(op string, req *TTSRequest, stream bool, opts []CallOption) (*spec, error) {
	if req == nil {
		return nil, &ValidationError{"text", "missing_field", "the request is nil"}
	}
	if c.validate {
		if err := req.Validate(); err != nil {
			return nil, err
		}
	}
	body, err := jsonBody(wireTTS{TTSRequest: req, Stream: stream})
	if err != nil {
		return nil, err
	}
	path := "/v1/tts"
	if stream {
		path += "?stream=true"
	}
	return &spec{op: op, method: http.MethodPost, path: path, body: body, idempotent: true, guarded: true,
		retries: true, text: req.Text, opts: opts}, nil
}

// Synthesize turns req into one audio file (req.Format, default WAV), retrying per the
// policy. When fallback audio is configured and the server cannot answer, it returns the
// fallback (Audio.Fallback) together with a *FallbackError: errors.Is(err,
// ErrFallbackUsed) means the audio is usable.
func (c *Client) Synthesize(ctx context.Context, req *TTSRequest, opts ...CallOption) (*Audio, error) {
	s, err := c.ttsSpec("synthesize", req, false, opts)
	if err != nil {
		return nil, err
	}
	s.accept = formatTypes[req.Format] // none for an unknown format
	return c.audioCall(ctx, s, true)
}

// audioCall runs a call whose answer is a whole audio file, and logs it; with fallback, the
// fallback audio answers the failures it may answer (as call.fail says).
func (c *Client) audioCall(ctx context.Context, s *spec, fallback bool) (*Audio, error) {
	var audio *Audio
	fb, err := c.wholeCall(ctx, s, c.maxAudio, fallback, func(a *attempt, data []byte) (int64, error) {
		var err error
		if audio, err = audioOf(a, data); err != nil {
			return -1, err
		}
		return audio.DurationMS, nil
	})
	if err != nil {
		return fb, err
	}
	return audio, nil
}

func audioOf(a *attempt, data []byte) (*Audio, error) {
	if err := a.expectType("audio/"); err != nil {
		return nil, err
	}
	h := a.resp.Header
	ct := h.Get("Content-Type")
	audio := &Audio{
		Data: data, Format: formatOf(ct, ""), ContentType: ct,
		RequestID: h.Get("X-Request-ID"), TraceID: a.cl.trace.traceID, Endpoint: a.ep.display,
		VoiceWarning: h.Get("X-Voice-Warning"),
	}
	audio.SampleRate, _ = strconv.Atoi(h.Get("X-Sample-Rate"))
	if ms, err := strconv.ParseInt(h.Get("X-Audio-Duration-Ms"), 10, 64); err == nil {
		audio.DurationMS = ms
	}
	if v := h.Get("X-Ignored-Fields"); v != "" {
		audio.IgnoredFields = strings.Split(v, ",")
	}
	return audio, nil
}

// Stream synthesizes req as Server-Sent Events: *AudioChunk (PCM, in order) and
// *Progress as sentences finish, then one *Done. It returns once the first event arrived
// (retrying per the policy until then); after that nothing is retried, and a failure ends
// the stream with a *StreamInterruptedError. Cancelling ctx ends the stream and closes
// the connection (the server then stops synthesizing). Close the stream when done.
//
// req.Format is ignored (chunks are always PCM): Accept is text/event-stream.
func (c *Client) Stream(ctx context.Context, req *TTSRequest, opts ...CallOption) (*Stream, error) {
	if req != nil && req.Format != "" {
		r := *req
		r.Format = "" // SSE carries PCM; a format would only be listed as ignored
		req = &r
	}
	s, err := c.ttsSpec("stream", req, true, opts)
	if err != nil {
		return nil, err
	}
	st := &Stream{}
	err = c.openSSE(ctx, s, &st.sseCall, "pcm_bytes", func() (err error) {
		st.first, err = st.read()
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Stream is a stream of events; read it with Next and Event (or Events), then check Err.
// Close may be called from another goroutine (to stop a reader blocked in Next).
type Stream struct {
	sseCall
	first Event
	cur   Event
	done  *Done // under mu
}

// read returns the next typed event from the network.
func (s *Stream) read() (Event, error) {
	for {
		raw, err := s.next()
		if err != nil {
			return nil, err
		}
		ev, err := ParseEvent(raw)
		if err != nil {
			return nil, s.annotate(err)
		}
		if ev != nil {
			return ev, nil
		}
	}
}

// Next advances to the next event; false at the end of the stream or on an error (Err).
func (s *Stream) Next() bool {
	if s.ended.Load() {
		return false
	}
	ev := s.first
	s.first = nil
	if ev == nil {
		if s.isCompleted() { // done is the last event
			s.endCompleted()
			return false
		}
		var err error
		if ev, err = s.read(); err != nil {
			s.end(err)
			return false
		}
	}
	chunk, audio := ev.(*AudioChunk)
	n := 0
	if audio {
		n = len(chunk.PCM)
	}
	var keep func()
	if done, ok := ev.(*Done); ok {
		keep = func() {
			s.done, s.completed, s.audioMS = done, true, int64(done.AudioDurationMS)
		}
	}
	if !s.deliver(audio, n, keep) {
		return false
	}
	s.cur = ev
	return true
}

// Event is the current event: *AudioChunk, *Progress or *Done.
func (s *Stream) Event() Event { return s.cur }

// Events ranges over the stream's events; check Err afterwards.
func (s *Stream) Events() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for s.Next() {
			if !yield(s.Event()) {
				return
			}
		}
	}
}

// Err is the error that ended the stream, nil when it completed with its Done event (or
// was closed).
func (s *Stream) Err() error { return s.endErr() }

// Done is the stream's Done event once it has arrived.
func (s *Stream) Done() *Done {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// RequestID is the id the server logged the stream under.
func (s *Stream) RequestID() string { return s.cl.id }

// TraceID is the W3C trace id the stream was sent with (the server logs it too).
func (s *Stream) TraceID() string { return s.cl.trace.traceID }

// Close ends the stream (closing the connection if it is still open); always call it. It
// may be called from another goroutine than Next's, and more than once.
func (s *Stream) Close() error {
	s.end(nil)
	return nil
}

// WriteWAV reads the rest of the stream into w as a 16-bit WAV file (the exact sizes
// patched in when w is an io.WriteSeeker) and returns the Done event. Memory stays at one
// chunk. It closes the stream, not w.
func (s *Stream) WriteWAV(w io.Writer) (*Done, error) {
	defer s.Close()
	var ww *WAVWriter
	for s.Next() {
		if chunk, ok := s.Event().(*AudioChunk); ok {
			if ww == nil {
				ww = NewWAVWriter(w, chunk.SampleRate)
			}
			if _, err := ww.Write(chunk.PCM); err != nil {
				return nil, err
			}
		}
	}
	if s.Err() != nil {
		return nil, s.Err()
	}
	if ww == nil {
		ww = NewWAVWriter(w, 24000)
	}
	return s.Done(), ww.Close()
}
