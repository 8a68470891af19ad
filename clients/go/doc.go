// Package chattts is the Go client of chattts-server, a FastAPI server in front of the
// ChatTTS speech model.
//
// Make one Client and share it:
//
//	tts, err := chattts.New("http://localhost:9700", chattts.WithRetries(2), chattts.WithFallbackFile("sorry.wav"))
//
// Calls: Synthesize (a whole file), Stream (Server-Sent Events: PCM chunks, progress, done),
// StreamAudio (an io.ReadCloser of the audio as it is made, in bounded memory), Speech,
// SpeechAudio and SpeechStream (the OpenAI-compatible endpoint), Voices (the voice
// library), Health and Ready. Every call takes a context and per-call options.
//
// Resilience: retries with full-jitter exponential backoff on 429, 502, 503, 504,
// connection errors and timeouts, honouring Retry-After (never on other 4xx, never after
// audio reached the caller); a retry budget shared by all calls; a circuit breaker per
// endpoint; failover between endpoints; a pre-recorded fallback prompt returned flagged
// when the server cannot answer. Errors: *APIError for the server's error bodies, sentinel
// errors (ErrCircuitOpen, ErrStreamInterrupted, ErrFallbackUsed, ...) for errors.Is, typed
// errors for errors.As. Each call logs one slog record with its request_id, trace_id,
// text_hash and audio_duration_ms.
//
// Trace context: each call sends a W3C traceparent for a span of its own, in a new trace or
// in the caller's (ContextWithTraceparent, WithCallTraceparent); the server logs the same
// trace id.
//
// The decisions (request validation, retries, backoff, budget, breakers) are I/O-free code
// in request.go and policy.go; the SSE and WAV decoders are incremental and fuzzed over
// random splits. See README.md for the settings and the chattts command.
package chattts
