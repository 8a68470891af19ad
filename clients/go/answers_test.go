package chattts

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A malformed JSON answer is a failed call: logged as an error, counted against the
// breaker, not retried.
func TestMalformedJSONIsAFailure(t *testing.T) {
	srv := newScript(t, jsonAnswer(200, `{"data": [`), jsonAnswer(200, `{"id": 7}`))
	c, _, sink := testClient(t, []string{srv.srv.URL}, WithBreaker(1, time.Minute))
	_, err := c.Voices.List(context.Background())
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.RequestID != srv.requests()[0].Header.Get("X-Request-ID") || srv.count() != 1 {
		t.Fatalf("%v after %d requests", err, srv.count())
	}
	if recs := sink.Records(); len(recs) != 1 || recs[0].Attrs["outcome"] != "error" {
		t.Fatalf("records %+v", recs)
	}
	if st := c.BreakerStates()[srv.srv.URL]; st != BreakerOpen {
		t.Fatalf("the breaker is %s after a malformed answer", st)
	}
	// a well-formed document of the wrong shape too
	c, _, sink = testClient(t, []string{srv.srv.URL})
	if _, err := c.Voices.Export(context.Background()); !errors.Is(err, ErrProtocol) {
		t.Fatal(err)
	}
	if recs := sink.Records(); len(recs) != 1 || recs[0].Attrs["outcome"] != "error" {
		t.Fatalf("records %+v", recs)
	}
}

// Creating or importing nothing is an error, validation on or off, and nothing is sent.
func TestNilVoiceRequestsAreRefused(t *testing.T) {
	srv := newScript(t)
	for _, opts := range [][]Option{nil, {WithoutValidation()}} {
		c, _, _ := testClient(t, []string{srv.srv.URL}, opts...)
		if v, err := c.Voices.Create(context.Background(), nil); v != nil || !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("Create(nil): %v %v", v, err)
		}
		if r, err := c.Voices.Import(context.Background(), nil, false); r != nil || !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("Import(nil): %v %v", r, err)
		}
	}
	if srv.count() != 0 {
		t.Fatalf("%d requests sent", srv.count())
	}
}

// Media types are case-insensitive, for whole answers and for audio streams alike.
func TestAudioContentTypeIsCaseInsensitive(t *testing.T) {
	answer := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "Audio/MPEG")
		io.WriteString(w, "ID3...")
	}
	srv := newScript(t, answer, answer, answer, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audiox/mpeg")
		io.WriteString(w, "ID3...")
	})
	c, _, _ := testClient(t, []string{srv.srv.URL}, WithRetries(0))
	ctx := context.Background()
	audio, err := c.Speech(ctx, &SpeechRequest{Input: "Hi.", Voice: "alloy"})
	if err != nil || audio.Format != "mp3" {
		t.Fatal(audio, err)
	}
	for _, open := range []func() (*AudioStream, error){
		func() (*AudioStream, error) { return c.StreamAudio(ctx, &TTSRequest{Text: "Hi.", Format: "mp3"}) },
		func() (*AudioStream, error) { return c.SpeechAudio(ctx, &SpeechRequest{Input: "Hi.", Voice: "alloy"}) },
	} {
		as, err := open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(as)
		as.Close()
		if err != nil || string(data) != "ID3..." || as.Format != "mp3" {
			t.Fatalf("%q %v %q", data, err, as.Format)
		}
	}
	if _, err := c.StreamAudio(ctx, hello()); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "audiox/mpeg") {
		t.Fatalf("audiox/mpeg: %v", err)
	}
}
