package chattts

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// SpeechRequest is the body of the OpenAI-compatible POST /v1/audio/speech.
type SpeechRequest struct {
	Model          string   `json:"model"` // any name means ChatTTS; empty sends "chattts"
	Input          string   `json:"input"`
	Voice          string   `json:"voice"`                     // alloy, ash, ..., seed:N or a saved voice
	ResponseFormat string   `json:"response_format,omitempty"` // mp3 (default), opus, aac, flac, wav, pcm
	Speed          *float64 `json:"speed,omitempty"`           // 0.25–4.0, clamped to 0.5–2.0
	Instructions   string   `json:"instructions,omitempty"`    // accepted, ignored
	StreamFormat   string   `json:"stream_format,omitempty"`   // set by Speech / SpeechStream
}

func (c *Client) speechSpec(op string, req *SpeechRequest, streamFormat string, opts []CallOption) (*spec, error) {
	if req == nil || req.Voice == "" {
		return nil, &ValidationError{"voice", "missing_field", "voice is required"}
	}
	if c.validate {
		if err := checkText(req.Input, "input"); err != nil {
			return nil, err
		}
		if req.ResponseFormat != "" && !contains(Formats, req.ResponseFormat) {
			return nil, &ValidationError{"response_format", "invalid_value", "response_format must be one of " + strings.Join(Formats, ", ")}
		}
		if err := checkFloat(req.Speed, "speed", 0.25, 4.0, true); err != nil {
			return nil, err
		}
	}
	r := *req
	if r.Model == "" {
		r.Model = "chattts"
	}
	r.StreamFormat = streamFormat
	body, err := jsonBody(&r)
	if err != nil {
		return nil, err
	}
	return &spec{op: op, method: http.MethodPost, path: "/v1/audio/speech", body: body, idempotent: true,
		guarded: true, retries: true, text: req.Input, opts: opts}, nil
}

// Speech is OpenAI's speech endpoint with stream_format "audio", read whole: the file in
// ResponseFormat (mp3 by default). Fallback audio applies as in Synthesize.
func (c *Client) Speech(ctx context.Context, req *SpeechRequest, opts ...CallOption) (*Audio, error) {
	s, err := c.speechSpec("speech", req, "audio", opts)
	if err != nil {
		return nil, err
	}
	return c.audioCall(ctx, s, true)
}

// SpeechAudio is Speech as a stream of bytes (an AudioStream, bounded memory).
func (c *Client) SpeechAudio(ctx context.Context, req *SpeechRequest, opts ...CallOption) (*AudioStream, error) {
	s, err := c.speechSpec("speech_audio", req, "audio", opts)
	if err != nil {
		return nil, err
	}
	return c.audioStream(ctx, s)
}

// SpeechUsage is the final event of an OpenAI SSE stream: input tokens are characters,
// output tokens GPT steps.
type SpeechUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// SpeechStream reads OpenAI's stream_format "sse": speech.audio.delta events (bytes of
// the ResponseFormat stream, in order) and one speech.audio.done with the usage. It ends
// as Stream does: a failure after audio reached the caller, a delta without audio
// (a *ProtocolError) and a stream that ends without speech.audio.done all end it with a
// *StreamInterruptedError. Close may be called from another goroutine.
type SpeechStream struct {
	sseCall
	first   []byte
	pending bool // first is the first delta, not yet delivered
	delta   []byte
	usage   *SpeechUsage // under mu
}

// SpeechStream starts OpenAI's SSE stream (stream_format "sse"): it returns once the first
// event arrived, retrying until then; nothing is retried after.
func (c *Client) SpeechStream(ctx context.Context, req *SpeechRequest, opts ...CallOption) (*SpeechStream, error) {
	s, err := c.speechSpec("speech_stream", req, "sse", opts)
	if err != nil {
		return nil, err
	}
	st := &SpeechStream{}
	err = c.openSSE(ctx, s, &st.sseCall, "audio_bytes", func() error {
		delta, usage, err := st.read()
		switch {
		case err != nil:
			return err
		case usage != nil: // done at once: a stream without audio
			st.complete(func() { st.usage = usage })
		default:
			st.first, st.pending = delta, true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

type speechEvent struct {
	Type  string       `json:"type"`
	Audio *[]byte      `json:"audio"` // nil: null or missing
	Usage *SpeechUsage `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// read returns the next delta's bytes, or the usage once speech.audio.done arrived.
func (s *SpeechStream) read() (delta []byte, usage *SpeechUsage, err error) {
	for {
		raw, err := s.next()
		if err != nil {
			return nil, nil, err
		}
		var ev speechEvent
		if err := json.Unmarshal([]byte(raw.Data), &ev); err != nil {
			return nil, nil, s.annotate(&ProtocolError{Msg: "malformed speech event: " + err.Error()})
		}
		switch ev.Type {
		case "speech.audio.delta":
			if ev.Audio == nil {
				return nil, nil, s.annotate(&ProtocolError{Msg: "speech.audio.delta without audio"})
			}
			return *ev.Audio, nil, nil
		case "speech.audio.done":
			if ev.Usage == nil {
				return nil, nil, s.annotate(&ProtocolError{Msg: "speech.audio.done without usage"})
			}
			return nil, ev.Usage, nil
		}
		if ev.Error != nil {
			apiErr, _ := parseErrorBody([]byte(raw.Data))
			if apiErr == nil {
				apiErr = &APIError{Message: ev.Error.Message}
			}
			apiErr.InStream, apiErr.StatusCode = true, statusOfType[apiErr.Type]
			return nil, nil, s.annotate(apiErr)
		}
	}
}

// Next advances to the next delta; false after the done event or on an error (Err).
func (s *SpeechStream) Next() bool {
	if s.ended.Load() {
		return false
	}
	delta, ok := s.first, s.pending
	s.first, s.pending = nil, false
	if !ok {
		if s.isCompleted() {
			s.endCompleted()
			return false
		}
		var usage *SpeechUsage
		var err error
		if delta, usage, err = s.read(); err != nil {
			s.end(err)
			return false
		}
		if usage != nil {
			s.complete(func() { s.usage = usage })
			s.endCompleted()
			return false
		}
	}
	if !s.deliver(true, len(delta), nil) {
		return false
	}
	s.delta = delta
	return true
}

// Delta is the current delta's audio bytes.
func (s *SpeechStream) Delta() []byte { return s.delta }

// Usage is the done event's usage, once the stream completed.
func (s *SpeechStream) Usage() *SpeechUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage
}

// Err is what ended the stream (nil when it completed, or was closed).
func (s *SpeechStream) Err() error { return s.endErr() }

// RequestID is the id the server logged the stream under.
func (s *SpeechStream) RequestID() string { return s.cl.id }

// TraceID is the W3C trace id the stream was sent with (the server logs it too).
func (s *SpeechStream) TraceID() string { return s.cl.trace.traceID }

// Close ends the stream (closing the connection if it is still open); always call it. It
// may be called from another goroutine than Next's, and more than once.
func (s *SpeechStream) Close() error {
	s.end(nil)
	return nil
}
