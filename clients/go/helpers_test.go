package chattts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock only moves when the client sleeps, or when a test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fakeClock) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// logSink keeps every slog record, its attributes flattened.
type logSink struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]any
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *logSink) WithGroup(string) slog.Handler            { return s }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.Any()
		return true
	})
	s.mu.Lock()
	s.records = append(s.records, rec)
	s.mu.Unlock()
	return nil
}

func (s *logSink) Records() []logRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]logRecord(nil), s.records...)
}

// recorded is one request a scripted server saw.
type recorded struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// script is a fake server answering requests with its steps in order.
type script struct {
	t     testing.TB
	mu    sync.Mutex
	steps []http.HandlerFunc
	reqs  []recorded
	srv   *httptest.Server
}

func newScript(t testing.TB, steps ...http.HandlerFunc) *script {
	s := &script{t: t, steps: steps}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *script) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	var step http.HandlerFunc
	if len(s.steps) > 0 {
		step, s.steps = s.steps[0], s.steps[1:]
	}
	s.mu.Unlock()
	if step == nil {
		s.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "no more steps", 599)
		return
	}
	step(w, r)
}

func (s *script) add(steps ...http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, steps...)
}

func (s *script) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func (s *script) count() int { return len(s.requests()) }

// repeat is the same step n times.
func repeat(n int, step http.HandlerFunc) []http.HandlerFunc {
	out := make([]http.HandlerFunc, n)
	for i := range out {
		out[i] = step
	}
	return out
}

func apiError(status int, code string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"scripted %s","type":"t","param":"text","code":%q,"request_id":%q}}`,
			code, code, r.Header.Get("X-Request-ID"))
	}
}

var testPCM = []byte{1, 0, 2, 0, 3, 0, 4, 0}

func wavAnswer(pcm []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("X-Sample-Rate", "24000")
		w.Header().Set("X-Audio-Duration-Ms", "1234")
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		w.Write(WAVHeader(24000, int64(len(pcm))))
		w.Write(pcm)
	}
}

func sseEvent(name string, payload any) string {
	b, _ := json.Marshal(payload)
	return fmt.Sprintf("event: %s\ndata: %s\n\n", name, b)
}

func audioEvent(seq int, pcm []byte) string {
	return sseEvent("audio", map[string]any{"seq": seq, "sample_rate": 24000, "format": "pcm_s16le",
		"audio": base64.StdEncoding.EncodeToString(pcm)})
}

func progressEvent(done, total int) string {
	return sseEvent("progress", map[string]any{"sentences_done": done, "sentences_total": total, "audio_ms": 10})
}

func doneEvent(ms int) string {
	return sseEvent("done", map[string]any{"request_id": "rid", "audio_duration_ms": ms, "elapsed_ms": 5,
		"time_to_first_audio_ms": 1, "finish_reason": "stop"})
}

// sseAnswer sends the pieces, flushing each; cut drops the connection after them.
func sseAnswer(cut bool, pieces ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		w.WriteHeader(200)
		for _, p := range pieces {
			io.WriteString(w, p)
			w.(http.Flusher).Flush()
		}
		if cut {
			hijackClose(w)
		}
	}
}

// hijackClose drops the connection mid-response (no terminating chunk).
func hijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// testClient is a client of the given servers with a fake clock, jitter 0.5 and a log
// sink.
func testClient(t testing.TB, urls []string, opts ...Option) (*Client, *fakeClock, *logSink) {
	t.Helper()
	clk, sink := newFakeClock(), &logSink{}
	base := []Option{withClock(clk), withRand(func() float64 { return 0.5 }), WithLogger(slog.New(sink))}
	if len(urls) > 1 {
		base = append(base, WithEndpoints(urls[1:]...))
	}
	c, err := New(urls[0], append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, clk, sink
}

func hello() *TTSRequest { return &TTSRequest{Text: "Hello there."} }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func mustContain(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
