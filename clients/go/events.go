package chattts

import (
	"encoding/json"
	"fmt"
)

// Event is one event of a Stream: *AudioChunk, *Progress or *Done.
type Event interface{ isEvent() }

// AudioChunk is a piece of audio, in order: 16-bit little-endian mono PCM.
type AudioChunk struct {
	Seq        int
	SampleRate int
	PCM        []byte
}

// Progress is sent as sentences finish.
type Progress struct {
	SentencesDone  int `json:"sentences_done"`
	SentencesTotal int `json:"sentences_total"`
	AudioMS        int `json:"audio_ms"`
}

// Done ends a stream that completed.
type Done struct {
	RequestID          string `json:"request_id"`
	AudioDurationMS    int    `json:"audio_duration_ms"`
	ElapsedMS          int    `json:"elapsed_ms"`
	TimeToFirstAudioMS *int   `json:"time_to_first_audio_ms"`
	// FinishReason is "stop", or "length" when a segment hit the token limit.
	FinishReason string `json:"finish_reason"`
}

func (*AudioChunk) isEvent() {}
func (*Progress) isEvent()   {}
func (*Done) isEvent()       {}

type audioPayload struct {
	Seq        *int   `json:"seq"`
	SampleRate *int   `json:"sample_rate"`
	Format     string `json:"format"`
	Audio      []byte `json:"audio"` // base64 in JSON
}

type errorBody struct {
	Error *struct {
		Message   string  `json:"message"`
		Type      string  `json:"type"`
		Param     *string `json:"param"`
		Code      *string `json:"code"`
		RequestID *string `json:"request_id"`
	} `json:"error"`
}

// statusOfType maps an error body's type to the status the server gives it, for errors
// that arrive inside a stream.
var statusOfType = map[string]int{
	"invalid_request_error": 400,
	"authentication_error":  401,
	"rate_limit_error":      429,
	"server_error":          500,
	"overloaded_error":      503,
	"service_unavailable":   503,
	"timeout_error":         504,
}

// ParseEvent turns a native /v1/tts SSE event into an Event: *AudioChunk, *Progress or
// *Done; an "error" event becomes an *APIError (InStream) returned as the error; events
// of other names give (nil, nil).
func ParseEvent(ev SSEEvent) (Event, error) {
	switch ev.Event {
	case "audio":
		var p audioPayload
		if err := json.Unmarshal([]byte(ev.Data), &p); err != nil {
			return nil, malformed(ev, err)
		}
		if p.Seq == nil || p.SampleRate == nil || p.Audio == nil || *p.SampleRate <= 0 {
			return nil, malformed(ev, fmt.Errorf("seq, sample_rate and audio are required"))
		}
		if p.Format != "" && p.Format != "pcm_s16le" {
			return nil, malformed(ev, fmt.Errorf("audio format %q", p.Format))
		}
		return &AudioChunk{Seq: *p.Seq, SampleRate: *p.SampleRate, PCM: p.Audio}, nil
	case "progress":
		var p Progress
		if err := strictUnmarshal(ev.Data, &p, "sentences_done", "sentences_total"); err != nil {
			return nil, malformed(ev, err)
		}
		return &p, nil
	case "done":
		var d Done
		if err := strictUnmarshal(ev.Data, &d, "request_id", "audio_duration_ms", "finish_reason"); err != nil {
			return nil, malformed(ev, err)
		}
		return &d, nil
	case "error":
		apiErr, err := parseErrorBody([]byte(ev.Data))
		if err != nil {
			return nil, malformed(ev, err)
		}
		apiErr.InStream = true
		apiErr.StatusCode = statusOfType[apiErr.Type]
		return nil, apiErr
	}
	return nil, nil
}

// strictUnmarshal decodes a JSON object that must hold the required keys.
func strictUnmarshal(data string, into any, required ...string) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &keys); err != nil {
		return err
	}
	for _, k := range required {
		if _, ok := keys[k]; !ok {
			return fmt.Errorf("%s is missing", k)
		}
	}
	return json.Unmarshal([]byte(data), into)
}

func malformed(ev SSEEvent, err error) error {
	return &ProtocolError{Msg: fmt.Sprintf("malformed %s event: %v", ev.Event, err)}
}

// parseErrorBody reads {"error": {...}}; an error when the body is not that shape.
func parseErrorBody(body []byte) (*APIError, error) {
	var b errorBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	if b.Error == nil {
		return nil, fmt.Errorf("no error object")
	}
	e := &APIError{Message: b.Error.Message, Type: b.Error.Type}
	if b.Error.Param != nil {
		e.Param = *b.Error.Param
	}
	if b.Error.Code != nil {
		e.Code = *b.Error.Code
	}
	if b.Error.RequestID != nil {
		e.RequestID = *b.Error.RequestID
	}
	return e, nil
}
