package chattts

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors; test with errors.Is. The typed errors below carry the details
// (errors.As).
var (
	// ErrInvalidRequest: a request failed Validate (see *ValidationError) and was not sent.
	ErrInvalidRequest = errors.New("chattts: invalid request")
	// ErrCircuitOpen: every endpoint's circuit breaker is open; nothing was sent
	// (see *CircuitOpenError).
	ErrCircuitOpen = errors.New("chattts: circuit open")
	// ErrStreamInterrupted: a stream failed after audio had reached the caller; it is never
	// retried, since a retry would repeat that audio (see *StreamInterruptedError).
	ErrStreamInterrupted = errors.New("chattts: stream interrupted after audio was delivered")
	// ErrFallbackUsed: the server could not answer and the configured fallback audio was
	// returned instead; the result is usable and flagged (see *FallbackError).
	ErrFallbackUsed = errors.New("chattts: fallback audio used")
	// ErrRetryBudgetExhausted: retries were stopped by the client's retry budget.
	ErrRetryBudgetExhausted = errors.New("chattts: retry budget exhausted")
	// ErrTimeout: a connect or read timeout, or the call's deadline (WithTimeout), passed.
	ErrTimeout = errors.New("chattts: timeout")
	// ErrProtocol: the answer did not follow the protocol (content type, event payload,
	// WAV layout).
	ErrProtocol = errors.New("chattts: protocol error")
	// ErrResponseTooLarge: a whole answer exceeded the client's bound (WithMaxResponseBytes;
	// see *ResponseTooLargeError).
	ErrResponseTooLarge = errors.New("chattts: response too large")
)

// APIError is the server's error body ({"error": {...}}) with the HTTP status. An error
// event inside an SSE stream is an APIError too, with InStream set and StatusCode derived
// from its type.
type APIError struct {
	StatusCode int
	Type       string // invalid_request_error, overloaded_error, ...
	Code       string // empty_text, voice_not_found, overloaded, ...
	Param      string // the offending field, when there is one
	Message    string
	RequestID  string
	// RetryAfter is the Retry-After header (0 when absent).
	RetryAfter time.Duration
	// Endpoint is the base URL that answered.
	Endpoint string
	// InStream: sent as an "event: error" inside a stream rather than as a status.
	InStream bool
	// Gateway: the body is not chattts-server's error object but a page a proxy or gateway
	// made (Ray Serve's proxy answers a replica's death with a bare 500).
	Gateway bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("chattts: ")
	if e.InStream {
		b.WriteString("stream error")
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	var details []string
	for _, kv := range [][2]string{{"code", e.Code}, {"param", e.Param}, {"request_id", e.RequestID}} {
		if kv[1] != "" {
			details = append(details, kv[0]+"="+kv[1])
		}
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	return b.String()
}

// Retryable reports whether the status is one the client retries (429, 502, 503, 504).
func (e *APIError) Retryable() bool {
	return !e.InStream && retryStatus(e.StatusCode)
}

// ValidationError is what Validate found wrong, in the server's terms (Code, Param).
type ValidationError struct {
	Param   string
	Code    string
	Message string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("chattts: invalid %s: %s (code=%s)", e.Param, e.Message, e.Code)
}

// Is makes errors.Is(err, ErrInvalidRequest) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidRequest }

// TransportError: no HTTP answer came back (connection refused or cut, TLS handshake
// refused, timeout).
type TransportError struct {
	Op       string // "POST /v1/tts"
	Endpoint string
	// RequestSent is false when the request surely never reached the server (the
	// connection could not be opened), so even a call that changes something is safe to
	// repeat.
	RequestSent bool
	// Timeout: a connect/read timeout or the call's deadline, not a refusal.
	Timeout   bool
	RequestID string
	Err       error
}

func (e *TransportError) Error() string {
	what := "transport error"
	if e.Timeout {
		what = "timeout"
	}
	return fmt.Sprintf("chattts: %s %s: %s: %v (request_id=%s)", e.Op, e.Endpoint, what, e.Err, e.RequestID)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrTimeout) true for timeouts.
func (e *TransportError) Is(target error) bool { return target == ErrTimeout && e.Timeout }

// CircuitOpenError: the call was refused without touching the network.
type CircuitOpenError struct {
	// RetryIn is how long until the first endpoint lets a trial call through.
	RetryIn time.Duration
}

func (e *CircuitOpenError) Error() string {
	return fmt.Sprintf("chattts: circuit open on every endpoint; next trial in %s", e.RetryIn.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrCircuitOpen) true.
func (e *CircuitOpenError) Is(target error) bool { return target == ErrCircuitOpen }

// StreamInterruptedError: a stream broke after audio reached the caller. Err is the cause
// (a *TransportError, or an in-stream *APIError).
type StreamInterruptedError struct {
	BytesReceived  int64 // PCM (Stream) or body (StreamAudio) bytes delivered before the cut
	ChunksReceived int
	RequestID      string
	Err            error
}

func (e *StreamInterruptedError) Error() string {
	return fmt.Sprintf("chattts: stream interrupted after %d bytes (request_id=%s): %v", e.BytesReceived, e.RequestID, e.Err)
}

func (e *StreamInterruptedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrStreamInterrupted) true.
func (e *StreamInterruptedError) Is(target error) bool { return target == ErrStreamInterrupted }

// FallbackError accompanies a usable, flagged fallback result; Err is why the server's
// audio could not be had.
type FallbackError struct {
	Err error
}

func (e *FallbackError) Error() string {
	return "chattts: fallback audio used: " + e.Err.Error()
}

func (e *FallbackError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrFallbackUsed) true.
func (e *FallbackError) Is(target error) bool { return target == ErrFallbackUsed }

// ProtocolError: the server's answer broke the protocol.
type ProtocolError struct {
	Msg       string
	RequestID string
}

func (e *ProtocolError) Error() string {
	if e.RequestID == "" {
		return "chattts: protocol error: " + e.Msg
	}
	return fmt.Sprintf("chattts: protocol error: %s (request_id=%s)", e.Msg, e.RequestID)
}

// Is makes errors.Is(err, ErrProtocol) true.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// ResponseTooLargeError: a whole answer (an audio file, a JSON document) was larger than
// the client's bound (WithMaxResponseBytes). It is not retried, and not counted against
// the breaker: the server answered.
type ResponseTooLargeError struct {
	Op       string // "POST /v1/tts"
	Endpoint string
	// Limit is the bound in bytes.
	Limit int64
	// ContentLength is what the answer announced (-1: it did not; it then sent more than
	// Limit bytes).
	ContentLength int64
	RequestID     string
}

func (e *ResponseTooLargeError) Error() string {
	size := "more than the limit"
	if e.ContentLength >= 0 {
		size = fmt.Sprintf("%d bytes", e.ContentLength)
	}
	msg := fmt.Sprintf("chattts: %s %s: the answer is too large: %s, the limit is %d bytes", e.Op, e.Endpoint, size, e.Limit)
	if e.RequestID != "" {
		msg += " (request_id=" + e.RequestID + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrResponseTooLarge) true.
func (e *ResponseTooLargeError) Is(target error) bool { return target == ErrResponseTooLarge }

// budgetError joins ErrRetryBudgetExhausted with the error that was not retried.
type budgetError struct{ err error }

func (e *budgetError) Error() string {
	return "chattts: not retried, the retry budget is exhausted: " + e.err.Error()
}

func (e *budgetError) Unwrap() []error { return []error{ErrRetryBudgetExhausted, e.err} }
