package chattts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// speechDelta is one OpenAI speech.audio.delta event carrying b.
func speechDelta(b []byte) string {
	d, _ := json.Marshal(map[string]any{"type": "speech.audio.delta", "audio": base64.StdEncoding.EncodeToString(b)})
	return "data: " + string(d) + "\n\n"
}

const speechDone = "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":3,\"output_tokens\":9,\"total_tokens\":12}}\n\n"

func speechReq() *SpeechRequest {
	return &SpeechRequest{Input: "Hi.", Voice: "alloy", ResponseFormat: "pcm"}
}

// drainSpeech reads a SpeechStream to its end and returns the bytes of its deltas.
func drainSpeech(s *SpeechStream) []byte {
	var got []byte
	for s.Next() {
		got = append(got, s.Delta()...)
	}
	return got
}

// A delta whose audio is null or missing is a protocol error, never the end of the stream:
// after audio it interrupts the stream, as its first event it fails the call.
func TestSpeechStreamDeltaWithoutAudioIsAProtocolError(t *testing.T) {
	for _, bad := range []string{
		"data: {\"type\":\"speech.audio.delta\",\"audio\":null}\n\n",
		"data: {\"type\":\"speech.audio.delta\"}\n\n",
	} {
		// after a delta: the stream is interrupted, not complete
		srv := newScript(t, sseAnswer(false, speechDelta([]byte("ab")), bad, speechDelta([]byte("cd")), speechDone))
		c, _, sink := testClient(t, []string{srv.srv.URL})
		s, err := c.SpeechStream(context.Background(), speechReq())
		if err != nil {
			t.Fatal(err)
		}
		got := drainSpeech(s)
		s.Close()
		var si *StreamInterruptedError
		if string(got) != "ab" || !errors.As(s.Err(), &si) || !errors.Is(s.Err(), ErrProtocol) || s.Usage() != nil {
			t.Fatalf("%q: got %q, err %v, usage %+v", bad, got, s.Err(), s.Usage())
		}
		if si.BytesReceived != 2 || si.ChunksReceived != 1 {
			t.Fatalf("%+v", si)
		}
		if rec := sink.Records()[0]; rec.Attrs["outcome"] != "error" {
			t.Fatalf("a cut stream logged as %+v", rec.Attrs)
		}
		// as the first event: the call fails (a protocol error is not retried)
		srv = newScript(t, sseAnswer(false, bad, speechDone))
		c, _, _ = testClient(t, []string{srv.srv.URL})
		s, err = c.SpeechStream(context.Background(), speechReq())
		if !errors.Is(err, ErrProtocol) || s != nil || srv.count() != 1 {
			t.Fatalf("%q first: stream %v, err %v, %d requests", bad, s, err, srv.count())
		}
	}
}

// A stream that ends without speech.audio.done ends with a *StreamInterruptedError, as
// Stream does without its done event.
func TestSpeechStreamEndingWithoutDoneIsInterrupted(t *testing.T) {
	for _, cut := range []bool{false, true} {
		srv := newScript(t, sseAnswer(cut, speechDelta([]byte("ab")), speechDelta([]byte("cde"))))
		c, _, _ := testClient(t, []string{srv.srv.URL})
		s, err := c.SpeechStream(context.Background(), speechReq())
		if err != nil {
			t.Fatal(err)
		}
		got := drainSpeech(s)
		s.Close()
		var si *StreamInterruptedError
		if string(got) != "abcde" || !errors.As(s.Err(), &si) || si.BytesReceived != 5 || si.ChunksReceived != 2 || s.Usage() != nil {
			t.Fatalf("cut %v: got %q, err %v", cut, got, s.Err())
		}
		var te *TransportError
		if !errors.As(s.Err(), &te) || !errors.Is(s.Err(), io.ErrUnexpectedEOF) {
			t.Fatalf("cut %v: the cause is %v", cut, s.Err())
		}
	}
}

// A SpeechStream broken after audio counts against its endpoint's breaker, as Stream and
// AudioStream do.
func TestSpeechStreamFailureCountsAgainstTheBreaker(t *testing.T) {
	for _, kind := range []string{"speech", "stream"} {
		var srv *script
		if kind == "speech" {
			srv = newScript(t, sseAnswer(true, speechDelta([]byte("ab"))))
		} else {
			srv = newScript(t, sseAnswer(true, audioEvent(0, testPCM)))
		}
		c, _, _ := testClient(t, []string{srv.srv.URL}, WithBreaker(1, time.Minute))
		var err error
		if kind == "speech" {
			var s *SpeechStream
			if s, err = c.SpeechStream(context.Background(), speechReq()); err == nil {
				drainSpeech(s)
				s.Close()
				err = s.Err()
			}
		} else {
			var s *Stream
			if s, err = c.Stream(context.Background(), hello()); err == nil {
				for s.Next() {
				}
				s.Close()
				err = s.Err()
			}
		}
		if !errors.Is(err, ErrStreamInterrupted) {
			t.Fatalf("%s: %v", kind, err)
		}
		if st := c.BreakerStates()[srv.srv.URL]; st != BreakerOpen {
			t.Fatalf("%s: a broken stream left the breaker %s", kind, st)
		}
	}
}

// The errors of a SpeechStream carry what Stream's carry: the request id on a wrong content
// type, the endpoint and request id on an error event.
func TestSpeechStreamErrorsCarryTheRequestAndEndpoint(t *testing.T) {
	srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"not":"sse"}`)
	})
	c, _, _ := testClient(t, []string{srv.srv.URL})
	_, err := c.SpeechStream(context.Background(), speechReq())
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.RequestID == "" || pe.RequestID != srv.requests()[0].Header.Get("X-Request-ID") {
		t.Fatalf("wrong content type: %#v", err)
	}
	mustContain(t, err.Error(), "application/json")

	// an error event without a request id, before and after audio
	errEvent := "data: {\"error\":{\"message\":\"engine failed\",\"type\":\"server_error\",\"code\":\"internal_error\"}}\n\n"
	srv = newScript(t, sseAnswer(false, errEvent), sseAnswer(false, speechDelta([]byte("ab")), errEvent))
	c, _, _ = testClient(t, []string{srv.srv.URL})
	_, err = c.SpeechStream(context.Background(), speechReq())
	var api *APIError
	if !errors.As(err, &api) || !api.InStream || api.StatusCode != 500 || api.Endpoint != srv.srv.URL ||
		api.RequestID != srv.requests()[0].Header.Get("X-Request-ID") || srv.count() != 1 {
		t.Fatalf("error event first: %#v", err)
	}
	s, err := c.SpeechStream(context.Background(), speechReq())
	if err != nil {
		t.Fatal(err)
	}
	drainSpeech(s)
	s.Close()
	if !errors.Is(s.Err(), ErrStreamInterrupted) || !errors.As(s.Err(), &api) || api.Endpoint != srv.srv.URL ||
		api.RequestID != srv.requests()[1].Header.Get("X-Request-ID") || api.Code != "internal_error" {
		t.Fatalf("error event after audio: %v (%#v)", s.Err(), api)
	}
}

// Media types are case-insensitive: "Text/Event-Stream" is SSE.
func TestSSEContentTypeIsCaseInsensitive(t *testing.T) {
	answer := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "Text/Event-Stream; charset=UTF-8")
			io.WriteString(w, body)
		}
	}
	srv := newScript(t, answer(speechDelta([]byte("ab"))+speechDone), answer(audioEvent(0, testPCM)+doneEvent(1)))
	c, _, _ := testClient(t, []string{srv.srv.URL})
	s, err := c.SpeechStream(context.Background(), speechReq())
	if err != nil {
		t.Fatal(err)
	}
	if got := drainSpeech(s); string(got) != "ab" || s.Err() != nil {
		t.Fatalf("%q %v", got, s.Err())
	}
	s.Close()
	st, err := c.Stream(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	for st.Next() {
	}
	if st.Err() != nil || st.Done() == nil {
		t.Fatal(st.Err())
	}
	st.Close()
}

// floodingSSE sends n events in one write, then holds the connection until the client
// goes away.
func floodingSSE(event string, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, strings.Repeat(event, n))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

// Close on another goroutine while Next delivers events is race-free (run with -race):
// the stream ends, Next reports no event after it, and the call is logged once.
func TestCloseWhileEventsFlowIsRaceFree(t *testing.T) {
	const rounds = 10
	for _, kind := range []string{"stream", "speech"} {
		for i := 0; i < rounds; i++ {
			var srv *script
			if kind == "stream" {
				srv = newScript(t, floodingSSE(audioEvent(0, testPCM), 500))
			} else {
				srv = newScript(t, floodingSSE(speechDelta(testPCM), 500))
			}
			c, _, sink := testClient(t, []string{srv.srv.URL})
			var next func() bool
			var closeIt func() error
			var errOf func() error
			if kind == "stream" {
				s, err := c.Stream(context.Background(), hello())
				if err != nil {
					t.Fatal(err)
				}
				next, closeIt, errOf = s.Next, s.Close, s.Err
			} else {
				s, err := c.SpeechStream(context.Background(), speechReq())
				if err != nil {
					t.Fatal(err)
				}
				next, closeIt, errOf = s.Next, s.Close, s.Err
			}
			start, closed := make(chan struct{}), make(chan struct{})
			go func() {
				<-start
				closeIt()
				close(closed)
			}()
			n := 0
			for next() { // events flow while Close runs; it ends the loop
				n++
				if n == 1 {
					close(start)
				}
			}
			<-closed
			if n == 0 || n > 500 || errOf() != nil || next() {
				t.Fatalf("%s: %d events, err %v", kind, n, errOf())
			}
			if recs := sink.Records(); len(recs) != 1 || recs[0].Attrs["outcome"] != "ok" {
				t.Fatalf("%s: records %+v", kind, recs)
			}
		}
	}
}
