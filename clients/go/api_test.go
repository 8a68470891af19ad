package chattts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

func jsonAnswer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestVoicesCallsPathsAndBodies(t *testing.T) {
	voice := `{"id":"narrator","kind":"seed","seed":42,"description":"calm","language":"en","defaults":{"speed":1.2},"model_fingerprint":"abc","created_at":1.5}`
	srv := newScript(t,
		jsonAnswer(200, `{"object":"list","data":[{"id":"alloy","kind":"builtin","seed":1001},`+voice+`]}`),
		jsonAnswer(201, voice),
		jsonAnswer(200, voice),
		jsonAnswer(200, voice),
		func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) },
		wavAnswer(testPCM),
		jsonAnswer(200, `{"format":"chattts-server-voices","version":1,"voices":[{"name":"narrator"}]}`),
		jsonAnswer(200, `{"imported":["narrator"],"skipped":[]}`),
		apiError(404, "voice_not_found"),
	)
	c, _, _ := testClient(t, []string{srv.srv.URL})
	ctx := context.Background()
	list, err := c.Voices.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "alloy" || *list[1].Seed != 42 || *list[1].Defaults.Speed != 1.2 {
		t.Fatalf("%+v %v", list, err)
	}
	v, err := c.Voices.Create(ctx, &VoiceCreate{Name: "narrator", Seed: Ptr[int64](42), Description: "calm",
		Defaults: &VoiceDefaults{Speed: Ptr(1.2)}})
	if err != nil || v.ID != "narrator" {
		t.Fatal(v, err)
	}
	if _, err := c.Voices.Get(ctx, "narrator"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Voices.Update(ctx, "narrator", VoicePatch{Description: Ptr("new"), Clear: []string{"language"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Voices.Delete(ctx, "narrator"); err != nil {
		t.Fatal(err)
	}
	sample, err := c.Voices.Sample(ctx, "narrator", SampleOptions{Format: "wav", Text: "Hi & bye", Lang: "en"})
	if err != nil || sample.Format != "wav" {
		t.Fatal(sample, err)
	}
	doc, err := c.Voices.Export(ctx)
	if err != nil || len(doc.Voices) != 1 {
		t.Fatal(doc, err)
	}
	res, err := c.Voices.Import(ctx, doc, true)
	if err != nil || res.Imported[0] != "narrator" {
		t.Fatal(res, err)
	}
	_, err = c.Voices.Get(ctx, "../x.y")
	var api *APIError
	if !errors.As(err, &api) || api.Code != "voice_not_found" {
		t.Fatal(err)
	}
	reqs := srv.requests()
	want := []string{"GET /v1/voices", "POST /v1/voices", "GET /v1/voices/narrator", "PATCH /v1/voices/narrator",
		"DELETE /v1/voices/narrator", "GET /v1/voices/narrator/sample", "GET /v1/voices/export", "POST /v1/voices/import"}
	for i, w := range want {
		if got := reqs[i].Method + " " + reqs[i].Path; got != w {
			t.Errorf("request %d: %s, want %s", i, got, w)
		}
	}
	var created map[string]any
	json.Unmarshal(reqs[1].Body, &created)
	if created["name"] != "narrator" || created["seed"] != 42.0 || created["spk_emb"] != nil {
		t.Fatalf("create body %s", reqs[1].Body)
	}
	if string(reqs[3].Body) != `{"description":"new","language":null}` {
		t.Fatalf("patch body %s", reqs[3].Body)
	}
	if reqs[5].Query != "format=wav&lang=en&text=Hi+%26+bye" || reqs[7].Query != "overwrite=true" {
		t.Fatalf("queries %q %q", reqs[5].Query, reqs[7].Query)
	}
	// the name travels escaped, dots included: it can never step up the path
	if reqs[8].Path != "/v1/voices/../x.y" { // decoded by the server: one path segment was sent
		t.Fatalf("%s", reqs[8].Path)
	}
	if p, _ := voicePath("../x.y"); p != "/v1/voices/%2E%2E%2Fx%2Ey" {
		t.Fatal(p)
	}
}

func TestSpeechAudioAndSSE(t *testing.T) {
	delta := func(b []byte) string {
		d, _ := json.Marshal(map[string]any{"type": "speech.audio.delta", "audio": base64.StdEncoding.EncodeToString(b)})
		return "data: " + string(d) + "\n\n"
	}
	done := "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":3,\"output_tokens\":9,\"total_tokens\":12}}\n\n"
	srv := newScript(t,
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "audio/mpeg")
			io.WriteString(w, "ID3...")
		},
		sseAnswer(false, delta([]byte("ab")), ": keep-alive\n\n", delta([]byte("cd")), done),
	)
	c, _, _ := testClient(t, []string{srv.srv.URL})
	ctx := context.Background()
	audio, err := c.Speech(ctx, &SpeechRequest{Input: "Hi.", Voice: "alloy"})
	if err != nil || audio.Format != "mp3" || string(audio.Data) != "ID3..." {
		t.Fatal(audio, err)
	}
	s, err := c.SpeechStream(ctx, &SpeechRequest{Input: "Hi.", Voice: "alloy", ResponseFormat: "pcm"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []byte
	for s.Next() {
		got = append(got, s.Delta()...)
	}
	if s.Err() != nil || string(got) != "abcd" || s.Usage().TotalTokens != 12 {
		t.Fatalf("%q %v %+v", got, s.Err(), s.Usage())
	}
	reqs := srv.requests()
	var b0, b1 map[string]any
	json.Unmarshal(reqs[0].Body, &b0)
	json.Unmarshal(reqs[1].Body, &b1)
	if b0["model"] != "chattts" || b0["stream_format"] != "audio" || b1["stream_format"] != "sse" ||
		reqs[1].Header.Get("Accept") != "text/event-stream" || reqs[0].Path != "/v1/audio/speech" {
		t.Fatalf("%v %v", b0, b1)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	srv := newScript(t,
		jsonAnswer(200, `{"status":"ok"}`),
		jsonAnswer(503, `{"status":"loading"}`),
		jsonAnswer(200, `{"status":"ready","model":{"sample_rate":24000}}`),
	)
	c, _, _ := testClient(t, []string{srv.srv.URL}, WithBreaker(1, 0))
	ctx := context.Background()
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" || !h.Ready {
		t.Fatal(h, err)
	}
	h, err = c.Ready(ctx)
	if err != nil || h.Ready || h.Status != "loading" {
		t.Fatal(h, err)
	}
	h, err = c.Ready(ctx)
	if err != nil || !h.Ready || h.Model["sample_rate"] != 24000.0 {
		t.Fatal(h, err)
	}
	if srv.count() != 3 {
		t.Fatal(srv.count())
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	for name, opts := range map[string][]Option{
		"api key with space": {WithAPIKey(" sk")},
		"api key non-ascii":  {WithAPIKey("sk-é")},
		"key without cert":   {WithTLSFiles("", "", "key.pem")},
		"missing CA":         {WithTLSFiles("/nonexistent/ca.pem", "", "")},
		"TLS and transport":  {WithTransport(http.DefaultTransport), WithTLSFiles("ca.pem", "", "")},
		"bad endpoint":       {WithEndpoints("ftp://x")},
		"fallback not http":  {WithFallbackURL("file:///x")},
		"negative retries":   {WithRetries(-1)},
	} {
		if _, err := New("http://localhost:9700", opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New("localhost:9700"); err == nil {
		t.Error("a URL without scheme was accepted")
	}
	c, err := New("https://user:pw@tts.example/prefix/")
	if err != nil || c.endpoints[0].base != "https://user:pw@tts.example/prefix" || c.endpoints[0].display != "https://user:xxxxx@tts.example/prefix" {
		t.Fatal(err, c.endpoints[0])
	}
}

func TestARequestIDFromTheContextIsSentAndChecked(t *testing.T) {
	srv := newScript(t, wavAnswer(testPCM))
	c, _, _ := testClient(t, []string{srv.srv.URL})
	audio, err := c.Synthesize(ContextWithRequestID(context.Background(), "trace-1.2:3"), hello())
	if err != nil || audio.RequestID != "trace-1.2:3" || srv.requests()[0].Header.Get("X-Request-ID") != "trace-1.2:3" {
		t.Fatal(audio, err)
	}
	if _, err := c.Synthesize(ContextWithRequestID(context.Background(), "bad id"), hello()); !errors.Is(err, ErrInvalidRequest) {
		t.Fatal(err)
	}
}

func TestCallOptionsOverrideTheClientForOneCall(t *testing.T) {
	srv := newScript(t, apiError(503, "overloaded"), apiError(503, "overloaded"), wavAnswer(testPCM))
	c, clk, _ := testClient(t, []string{srv.srv.URL}, WithTimeout(time.Hour))
	_, err := c.Synthesize(context.Background(), hello(), WithCallRetries(0), WithCallHeader("X-Tenant", "t1"),
		WithCallRequestID("call-1"))
	var api *APIError
	if !errors.As(err, &api) || srv.count() != 1 || api.RequestID != "call-1" {
		t.Fatalf("%v after %d requests", err, srv.count())
	}
	if r := srv.requests()[0]; r.Header.Get("X-Tenant") != "t1" || r.Header.Get("X-Request-ID") != "call-1" {
		t.Fatalf("%v", r.Header)
	}
	// a call deadline shorter than the backoff: no retry
	_, err = c.Synthesize(context.Background(), hello(), WithCallTimeout(ms(100)), WithCallRetries(5))
	if !errors.As(err, &api) || srv.count() != 2 || len(clk.Sleeps()) != 0 {
		t.Fatalf("%v after %d requests, sleeps %v", err, srv.count(), clk.Sleeps())
	}
	if _, err := c.Voices.List(context.Background(), WithCallHeader("X-Tenant", "t2")); err == nil {
		t.Fatal("a wav answer decoded as a voice list")
	}
	if srv.requests()[2].Header.Get("X-Tenant") != "t2" {
		t.Fatal("voices calls take call options too")
	}
}
