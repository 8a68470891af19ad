package chattts

import (
	"context"
	"encoding/json"
	"fmt"
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
// the ResponseFormat stream, in order) and one speech.audio.done with the usage.
type SpeechStream struct {
	sseCall
	first []byte
	delta []byte
	usage *SpeechUsage
}

// SpeechStream starts OpenAI's SSE stream (stream_format "sse"): it returns once the first
// delta arrived, retrying until then; nothing is retried after.
func (c *Client) SpeechStream(ctx context.Context, req *SpeechRequest, opts ...CallOption) (*SpeechStream, error) {
	s, err := c.speechSpec("speech_stream", req, "sse", opts)
	if err != nil {
		return nil, err
	}
	st := &SpeechStream{}
	err = c.openSSE(ctx, s, &st.sseCall, func() (err error) {
		st.first, err = st.read()
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

type speechEvent struct {
	Type  string       `json:"type"`
	Audio []byte       `json:"audio"`
	Usage *SpeechUsage `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// read returns the next delta's bytes; (nil, nil) after the done event.
func (s *SpeechStream) read() ([]byte, error) {
	if ct := s.a.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return nil, &ProtocolError{Msg: fmt.Sprintf("expected text/event-stream, got %q", ct)}
	}
	for {
		raw, err := s.next()
		if err != nil {
			return nil, err
		}
		var ev speechEvent
		if err := json.Unmarshal([]byte(raw.Data), &ev); err != nil {
			return nil, &ProtocolError{Msg: "malformed speech event: " + err.Error(), RequestID: s.cl.id}
		}
		switch ev.Type {
		case "speech.audio.delta":
			return ev.Audio, nil
		case "speech.audio.done":
			if ev.Usage == nil {
				return nil, &ProtocolError{Msg: "speech.audio.done without usage", RequestID: s.cl.id}
			}
			s.usage = ev.Usage
			return nil, nil
		}
		if ev.Error != nil {
			apiErr, _ := parseErrorBody([]byte(raw.Data))
			if apiErr == nil {
				apiErr = &APIError{Message: ev.Error.Message}
			}
			apiErr.InStream, apiErr.StatusCode = true, statusOfType[apiErr.Type]
			return nil, apiErr
		}
	}
}

// Next advances to the next delta; false after the done event or on an error (Err).
func (s *SpeechStream) Next() bool {
	if s.ended.Load() {
		return false
	}
	delta := s.first
	s.first = nil
	if delta == nil {
		if s.usage != nil {
			s.end(nil)
			return false
		}
		var err error
		if delta, err = s.read(); err != nil {
			s.end(err)
			return false
		}
		if delta == nil { // done
			s.end(nil)
			return false
		}
	}
	s.events++
	s.bytes += int64(len(delta))
	s.delta = delta
	return true
}

// Delta is the current delta's audio bytes.
func (s *SpeechStream) Delta() []byte { return s.delta }

// Usage is the done event's usage, once the stream completed.
func (s *SpeechStream) Usage() *SpeechUsage { return s.usage }

// Err is what ended the stream (nil when it completed).
func (s *SpeechStream) Err() error { return s.err }

// Close ends the stream; always call it.
func (s *SpeechStream) Close() error {
	s.end(nil)
	return nil
}

func (s *SpeechStream) end(err error) {
	s.stop(err, s.events, func(err error) { s.cl.finish(err, -1, false) })
}
