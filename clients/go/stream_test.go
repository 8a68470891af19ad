package chattts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStreamYieldsTypedEventsInOrder(t *testing.T) {
	srv := newScript(t, sseAnswer(false, ": keep-alive\n\n", audioEvent(0, []byte{1, 0}), progressEvent(1, 2),
		audioEvent(1, []byte{2, 0, 3, 0}), progressEvent(2, 2), doneEvent(42)))
	c, _, sink := testClient(t, []string{srv.srv.URL})
	s, err := c.Stream(context.Background(), &TTSRequest{Text: "One. Two.", Seed: Ptr[int64](7), Format: "mp3"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var kinds []string
	var pcm []byte
	for ev := range s.Events() {
		switch e := ev.(type) {
		case *AudioChunk:
			kinds = append(kinds, fmt.Sprintf("audio%d", e.Seq))
			pcm = append(pcm, e.PCM...)
		case *Progress:
			kinds = append(kinds, fmt.Sprintf("progress%d/%d", e.SentencesDone, e.SentencesTotal))
		case *Done:
			kinds = append(kinds, "done")
		}
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	want := []string{"audio0", "progress1/2", "audio1", "progress2/2", "done"}
	if !slices.Equal(kinds, want) || !slices.Equal(pcm, []byte{1, 0, 2, 0, 3, 0}) {
		t.Fatalf("events %v pcm %v", kinds, pcm)
	}
	if s.Done().AudioDurationMS != 42 || s.Done().FinishReason != "stop" {
		t.Fatalf("done %+v", s.Done())
	}
	req := srv.requests()[0]
	if req.Query != "stream=true" || req.Header.Get("Accept") != "text/event-stream" {
		t.Fatalf("request %s %v", req.Query, req.Header)
	}
	var body map[string]any
	json.Unmarshal(req.Body, &body)
	if body["stream"] != true || body["seed"] != 7.0 || body["text"] != "One. Two." {
		t.Fatalf("body %s", req.Body)
	}
	recs := sink.Records()
	if len(recs) != 1 || recs[0].Attrs["audio_duration_ms"] != int64(42) || recs[0].Attrs["outcome"] != "ok" ||
		recs[0].Attrs["completed"] != true {
		t.Fatalf("records %+v", recs)
	}
}

func TestAStreamCutAfterAudioIsNotRetried(t *testing.T) {
	srv := newScript(t, sseAnswer(true, audioEvent(0, []byte{1, 0, 2, 0})), sseAnswer(false, doneEvent(1)))
	c, clk, _ := testClient(t, []string{srv.srv.URL})
	s, err := c.Stream(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for s.Next() {
		n++
	}
	var si *StreamInterruptedError
	if n != 1 || !errors.Is(s.Err(), ErrStreamInterrupted) || !errors.As(s.Err(), &si) {
		t.Fatalf("%d events, err %v", n, s.Err())
	}
	if si.BytesReceived != 4 || si.ChunksReceived != 1 || si.RequestID != s.RequestID() {
		t.Fatalf("%+v", si)
	}
	var te *TransportError
	if !errors.As(s.Err(), &te) {
		t.Fatalf("the cause is not kept: %v", s.Err())
	}
	if srv.count() != 1 || len(clk.Sleeps()) != 0 {
		t.Fatalf("retried after audio: %d requests", srv.count())
	}
}

func TestAStreamFailingBeforeItsFirstEventIsRetried(t *testing.T) {
	srv := newScript(t, sseAnswer(true, ": keep-alive\n\n"), apiError(503, "overloaded"),
		sseAnswer(false, audioEvent(0, testPCM), doneEvent(1)))
	c, clk, _ := testClient(t, []string{srv.srv.URL})
	s, err := c.Stream(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var events int
	for s.Next() {
		events++
	}
	if s.Err() != nil || events != 2 || srv.count() != 3 || len(clk.Sleeps()) != 2 {
		t.Fatalf("err %v, %d events, %d requests", s.Err(), events, srv.count())
	}
}

func TestErrorEvents(t *testing.T) {
	errEvent := sseEvent("error", map[string]any{"error": map[string]any{"message": "engine failed",
		"type": "server_error", "param": nil, "code": "internal_error", "request_id": "rid-1"}})
	// before any audio: the server's error, not retried (the server chose to fail)
	srv := newScript(t, sseAnswer(false, errEvent))
	c, _, _ := testClient(t, []string{srv.srv.URL})
	_, err := c.Stream(context.Background(), hello())
	var api *APIError
	if !errors.As(err, &api) || !api.InStream || api.StatusCode != 500 || api.Code != "internal_error" || api.RequestID != "rid-1" {
		t.Fatalf("got %#v", err)
	}
	if errors.Is(err, ErrStreamInterrupted) || srv.count() != 1 {
		t.Fatal(err, srv.count())
	}
	// after audio: interrupted, the server's error inside
	srv.add(sseAnswer(false, audioEvent(0, testPCM), errEvent))
	s, err := c.Stream(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	for s.Next() {
	}
	if !errors.Is(s.Err(), ErrStreamInterrupted) || !errors.As(s.Err(), &api) || api.Code != "internal_error" {
		t.Fatalf("got %v", s.Err())
	}
}

func TestMalformedEventsAreProtocolErrors(t *testing.T) {
	for _, bad := range []string{
		"event: audio\ndata: {\"seq\":0}\n\n",
		"event: audio\ndata: {\"seq\":0,\"sample_rate\":24000,\"audio\":\"!!\"}\n\n",
		"event: done\ndata: []\n\n",
	} {
		srv := newScript(t, sseAnswer(false, bad))
		c, _, _ := testClient(t, []string{srv.srv.URL})
		_, err := c.Stream(context.Background(), hello())
		if !errors.Is(err, ErrProtocol) || srv.count() != 1 {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	wrongType := func(w http.ResponseWriter, r *http.Request) { wavAnswer(testPCM)(w, r) }
	srv := newScript(t, wrongType)
	c, _, _ := testClient(t, []string{srv.srv.URL})
	if _, err := c.Stream(context.Background(), hello()); !errors.Is(err, ErrProtocol) {
		t.Fatalf("audio/wav for a stream: %v", err)
	}
}

// blockedStream is a Stream whose server sent one audio event and then waits for the
// client to go away: gone is closed when it has.
type blockedStream struct {
	s    *Stream
	c    *Client
	sink *logSink
	url  string
	gone <-chan struct{}
}

func openBlockedStream(ctx context.Context, t *testing.T) blockedStream {
	t.Helper()
	gone := make(chan struct{})
	srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, audioEvent(0, testPCM))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the connection closed
		close(gone)
	})
	c, _, sink := testClient(t, []string{srv.srv.URL})
	s, err := c.Stream(ctx, hello())
	if err != nil {
		t.Fatal(err)
	}
	return blockedStream{s: s, c: c, sink: sink, url: srv.srv.URL, gone: gone}
}

func waitClosed(t *testing.T, gone <-chan struct{}) {
	t.Helper()
	select {
	case <-gone:
	case <-time.After(20 * time.Second): // a failure guard only: the close is immediate
		t.Fatal("the server never saw the connection close")
	}
}

func TestContextCancellationEndsAStreamAndClosesTheConnection(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b := openBlockedStream(ctx, t)
	s := b.s
	defer s.Close()
	if !s.Next() {
		t.Fatal(s.Err())
	}
	cancel()
	if s.Next() {
		t.Fatal("an event after cancel")
	}
	if !errors.Is(s.Err(), context.Canceled) || errors.Is(s.Err(), ErrStreamInterrupted) {
		t.Fatalf("got %v", s.Err())
	}
	waitClosed(t, b.gone)
	if rec := b.sink.Records()[0]; rec.Attrs["outcome"] != "cancelled" {
		t.Fatalf("record %+v", rec)
	}
	if st := b.c.BreakerStates()[b.url]; st != BreakerClosed {
		t.Fatal("a cancel counted against the breaker")
	}
}

func TestClosingAStreamEarlyClosesTheConnection(t *testing.T) {
	b := openBlockedStream(context.Background(), t)
	s := b.s
	s.Next()
	s.Close()
	waitClosed(t, b.gone)
	if s.Next() || s.Err() != nil {
		t.Fatal(s.Err())
	}
}

func TestWriteWAVPatchesExactSizesIntoAFile(t *testing.T) {
	srv := newScript(t, sseAnswer(false, audioEvent(0, []byte{1, 0, 2, 0}), audioEvent(1, []byte{3, 0}), doneEvent(0)),
		sseAnswer(false, audioEvent(0, []byte{1, 0, 2, 0}), audioEvent(1, []byte{3, 0}), doneEvent(0)))
	c, _, _ := testClient(t, []string{srv.srv.URL})
	path := filepath.Join(t.TempDir(), "out.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Stream(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteWAV(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, _ := os.ReadFile(path)
	if want := append(WAVHeader(24000, 6), 1, 0, 2, 0, 3, 0); !bytes.Equal(data, want) {
		t.Fatalf("file % x", data)
	}
	// a pipe cannot seek: the streaming header stays
	var buf bytes.Buffer
	s, _ = c.Stream(context.Background(), hello())
	if _, err := s.WriteWAV(&buf); err != nil {
		t.Fatal(err)
	}
	if want := append(WAVHeader(24000, -1), 1, 0, 2, 0, 3, 0); !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("stream % x", buf.Bytes())
	}
}

func chunkedAudio(cut bool, pieces ...[]byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("X-Sample-Rate", "24000")
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		for _, p := range pieces {
			w.Write(p)
			w.(http.Flusher).Flush()
		}
		if cut {
			hijackClose(w)
		}
	}
}

func TestStreamAudioSendsTheFormatAndStreamsBytes(t *testing.T) {
	head := WAVHeader(24000, -1)
	srv := newScript(t, apiError(503, "overloaded"), chunkedAudio(false, head, []byte{1, 0, 2, 0}, []byte{3, 0}))
	c, _, sink := testClient(t, []string{srv.srv.URL})
	as, err := c.StreamAudio(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	data, err := io.ReadAll(as)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, append(head, 1, 0, 2, 0, 3, 0)) || as.Format != "wav" || as.SampleRate != 24000 {
		t.Fatalf("% x %+v", data, as)
	}
	req := srv.requests()[1]
	var body map[string]any
	json.Unmarshal(req.Body, &body)
	if body["format"] != "wav" || body["stream"] != true || req.Header.Get("Accept") != "audio/wav" || req.Query != "stream=true" {
		t.Fatalf("request %s %v", req.Body, req.Header)
	}
	as.Close()
	rec := sink.Records()[0]
	if rec.Attrs["attempts"] != int64(2) || rec.Attrs["outcome"] != "ok" || rec.Attrs["audio_duration_ms"] != int64(0) {
		t.Fatalf("record %+v", rec)
	}
}

func TestStreamAudioCutAfterBytesIsInterruptedAndNotRetried(t *testing.T) {
	srv := newScript(t, chunkedAudio(true, WAVHeader(24000, -1), []byte{1, 0}))
	c, _, _ := testClient(t, []string{srv.srv.URL})
	as, err := c.StreamAudio(context.Background(), &TTSRequest{Text: "x", Format: "wav"})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	data, err := io.ReadAll(as)
	var si *StreamInterruptedError
	if !errors.Is(err, ErrStreamInterrupted) || !errors.As(err, &si) || si.BytesReceived != int64(len(data)) || len(data) != 46 {
		t.Fatalf("%d bytes, %v", len(data), err)
	}
	if srv.count() != 1 {
		t.Fatalf("%d requests", srv.count())
	}
}

func TestStreamAudioEndsOnCancelAndOnClose(t *testing.T) {
	for _, how := range []string{"cancel", "close"} {
		gone := make(chan struct{})
		srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "audio/wav")
			w.Write(WAVHeader(24000, -1))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			close(gone)
		})
		c, _, sink := testClient(t, []string{srv.srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		as, err := c.StreamAudio(ctx, hello())
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, WAVHeaderSize)
		if _, err := io.ReadFull(as, head); err != nil {
			t.Fatal(err)
		}
		if how == "cancel" {
			cancel()
			if _, err := io.ReadAll(as); !errors.Is(err, context.Canceled) {
				t.Fatalf("read after cancel: %v", err)
			}
		}
		as.Close()
		waitClosed(t, gone)
		cancel()
		if rec := sink.Records()[0]; rec.Attrs["outcome"] == "error" {
			t.Fatalf("%s logged as an error: %+v", how, rec)
		}
	}
}

func TestStreamAudioFallback(t *testing.T) {
	srv := newScript(t, repeat(3, apiError(503, "overloaded"))...)
	c, _, _ := testClient(t, []string{srv.srv.URL}, WithFallbackAudio(WAVHeader(16000, 0), "wav"))
	as, err := c.StreamAudio(context.Background(), hello())
	if !errors.Is(err, ErrFallbackUsed) || as == nil || !as.Fallback {
		t.Fatalf("got %v", err)
	}
	data, _ := io.ReadAll(as)
	if !bytes.Equal(data, WAVHeader(16000, 0)) || as.SampleRate != 16000 {
		t.Fatalf("% x", data)
	}
	as.Close()
}

func TestOneLogRecordPerCallWithoutTextOrKey(t *testing.T) {
	const secretText = "my bank password is hunter2"
	const key = "sk-very-secret-key"
	srv := newScript(t, apiError(503, "overloaded"), wavAnswer(testPCM), apiError(404, "voice_not_found"))
	c, _, sink := testClient(t, []string{srv.srv.URL}, WithAPIKey(key))
	if _, err := c.Synthesize(context.Background(), &TTSRequest{Text: secretText}); err != nil {
		t.Fatal(err)
	}
	c.Synthesize(context.Background(), &TTSRequest{Text: secretText, Voice: "nobody"})
	recs := sink.Records()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	ok, failed := recs[0], recs[1]
	want := map[string]any{"op": "synthesize", "outcome": "ok", "attempts": int64(2), "audio_duration_ms": int64(1234),
		"text_hash": TextHash(secretText), "endpoint": srv.srv.URL, "request_id": srv.requests()[0].Header.Get("X-Request-ID")}
	for k, v := range want {
		if ok.Attrs[k] != v {
			t.Fatalf("%s = %v, want %v (%+v)", k, ok.Attrs[k], v, ok.Attrs)
		}
	}
	if _, has := ok.Attrs["elapsed_ms"]; !has {
		t.Fatal("no elapsed_ms")
	}
	if failed.Attrs["outcome"] != "error" || failed.Attrs["status"] != int64(404) || failed.Attrs["code"] != "voice_not_found" {
		t.Fatalf("%+v", failed.Attrs)
	}
	if len(TextHash(secretText)) != 16 {
		t.Fatal("text_hash is the sha256 prefix the server logs (16 hex digits)")
	}
	for _, r := range recs {
		line := fmt.Sprint(r.Msg, r.Attrs)
		if strings.Contains(line, "hunter2") || strings.Contains(line, key) {
			t.Fatalf("secret logged: %s", line)
		}
	}
	if got := srv.requests()[0].Header.Get("Authorization"); got != "Bearer "+key {
		t.Fatalf("authorization %q", got)
	}
}

func TestCloseFromAnotherGoroutineUnblocksNext(t *testing.T) {
	b := openBlockedStream(context.Background(), t)
	s := b.s
	s.Next() // the first chunk
	ended := make(chan bool)
	go func() { ended <- s.Next() }() // blocks: the server sends nothing more
	s.Close()
	if <-ended {
		t.Fatal("an event after Close")
	}
	waitClosed(t, b.gone)
}

// endlessBody is an audio answer that never ends and ignores the request's context (as a
// stalled connection would): only Close stops it.
type endlessBody struct {
	closed chan struct{}
	once   sync.Once
}

func (b *endlessBody) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, errors.New("read on a closed body")
	default:
	}
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func (b *endlessBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

type endlessTransport struct{ body *endlessBody }

func (t endlessTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", "audio/wav")
	h.Set("X-Sample-Rate", "24000")
	return &http.Response{StatusCode: 200, Header: h, Body: t.body, ContentLength: -1, Request: r}, nil
}

// With the ring buffer full and nobody reading, cancelling the context still ends the
// stream: the pump wakes, the connection closes, the buffer is dropped and the call is
// logged as cancelled, all without a Read or Close.
func TestStreamAudioCancelFreesAStalledStream(t *testing.T) {
	body := &endlessBody{closed: make(chan struct{})}
	c, _, sink := testClient(t, []string{"http://tts.test"}, WithTransport(endlessTransport{body}), WithStreamBuffer(1024))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	as, err := c.StreamAudio(ctx, hello())
	if err != nil {
		t.Fatal(err)
	}
	cancel() // the pump fills the 1 KiB ring and blocks in its Write, whenever it gets there
	select {
	case <-as.finished:
	case <-time.After(20 * time.Second): // a failure guard only: the wake-up is immediate
		t.Fatal("the stream's goroutine is still blocked after the cancel")
	}
	select {
	case <-body.closed:
	default:
		t.Fatal("the connection was left open")
	}
	if as.Buffered() != 0 {
		t.Fatalf("%d bytes still buffered", as.Buffered())
	}
	if n, err := as.Read(make([]byte, 10)); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %d, %v", n, err)
	}
	if recs := sink.Records(); len(recs) != 1 || recs[0].Attrs["outcome"] != "cancelled" {
		t.Fatalf("records %+v", recs)
	}
	as.Close()
}
