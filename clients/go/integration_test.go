package chattts_test

// Integration tests against a real chattts-server on the tiny model. They skip unless
// CHATTTS_IT_URL is set; tests/go/ (pytest) starts the servers and runs them:
//
//	TestIntegration_*        a plain server          CHATTTS_IT_URL, CHATTTS_IT_OUT (a directory)
//	TestIntegrationSecure_*  API key + mTLS server   + CHATTTS_IT_API_KEY, _CA, _CERT, _KEY

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	chattts "github.com/chattts-server/chattts-server/clients/go"
)

// itText and itParams are also read by tests/go to ask the Python SDK for the same audio.
const itText = "Hello world. 你好，世界。"

func itRequest() *chattts.TTSRequest {
	return &chattts.TTSRequest{Text: itText, Seed: chattts.Ptr[int64](5), ManualSeed: chattts.Ptr[int64](3)}
}

// records is a slog sink the tests read back.
type records struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *records) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *records) all(t *testing.T) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(r.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func (r *records) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func itURL(t *testing.T) string {
	u := os.Getenv("CHATTTS_IT_URL")
	if u == "" {
		t.Skip("CHATTTS_IT_URL is not set (tests/go runs these against live servers)")
	}
	return u
}

func itClient(t *testing.T, opts ...chattts.Option) (*chattts.Client, *records) {
	t.Helper()
	logs := &records{}
	base := []chattts.Option{chattts.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))),
		chattts.WithTimeout(5 * time.Minute), chattts.WithBackoff(50*time.Millisecond, time.Second)}
	c, err := chattts.New(itURL(t), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, logs
}

func itOut(t *testing.T, name string, data []byte) {
	dir := os.Getenv("CHATTTS_IT_OUT")
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func pcmOf(t *testing.T, a *chattts.Audio) []byte {
	t.Helper()
	pcm, err := a.PCM()
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

// streamMatches: streamed PCM (s16le) is the whole file's PCM except near chunk boundaries,
// where the server's window decoder keeps it within 0.2% of the RMS (plus int16 rounding).
func streamMatches(streamed, whole []byte) error {
	if len(streamed) != len(whole) || len(whole) < 2 {
		return fmt.Errorf("stream: %d bytes, synthesize: %d bytes", len(streamed), len(whole))
	}
	var sum float64
	worst := 0
	for i := 0; i+1 < len(whole); i += 2 {
		w := int(int16(binary.LittleEndian.Uint16(whole[i:])))
		s := int(int16(binary.LittleEndian.Uint16(streamed[i:])))
		sum += float64(w * w)
		worst = max(worst, s-w, w-s)
	}
	bound := 0.002*math.Sqrt(sum/float64(len(whole)/2)) + 1
	if float64(worst) > bound {
		return fmt.Errorf("stream differs from synthesize by %d (bound %.1f)", worst, bound)
	}
	return nil
}

func streamPCM(t *testing.T, s *chattts.Stream) ([]byte, []chattts.Event) {
	t.Helper()
	defer s.Close()
	var pcm []byte
	var events []chattts.Event
	for s.Next() {
		events = append(events, s.Event())
		if c, ok := s.Event().(*chattts.AudioChunk); ok {
			if c.SampleRate != 24000 {
				t.Fatalf("sample rate %d", c.SampleRate)
			}
			pcm = append(pcm, c.PCM...)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return pcm, events
}

func TestIntegration_HealthAndReadiness(t *testing.T) {
	c, _ := itClient(t)
	h, err := c.Health(context.Background())
	if err != nil || h.Status != "ok" {
		t.Fatal(h, err)
	}
	r, err := c.Ready(context.Background())
	if err != nil || !r.Ready || r.Status != "ready" || r.Model["sample_rate"] != 24000.0 || r.Model["test_model"] != true {
		t.Fatalf("%+v %v", r, err)
	}
}

// Stream PCM equals StreamAudio PCM, and Synthesize PCM within the streaming bound, for the
// same manual_seed; the PCM is written to CHATTTS_IT_OUT for tests/go to compare with the
// Python SDK's.
func TestIntegration_StreamEqualsSynthesize(t *testing.T) {
	c, logs := itClient(t)
	ctx := context.Background()
	wav, err := c.Synthesize(ctx, itRequest())
	if err != nil {
		t.Fatal(err)
	}
	whole := pcmOf(t, wav)
	if wav.Format != "wav" || wav.SampleRate != 24000 || len(whole) < 24000 || wav.DurationMS != int64(math.Round(float64(len(whole))/48)) {
		t.Fatalf("%+v, %d bytes", wav, len(whole))
	}
	s, err := c.Stream(ctx, itRequest())
	if err != nil {
		t.Fatal(err)
	}
	streamed, events := streamPCM(t, s)
	if err := streamMatches(streamed, whole); err != nil {
		t.Fatal(err)
	}
	done, ok := events[len(events)-1].(*chattts.Done)
	if !ok || done.RequestID != s.RequestID() || (done.FinishReason != "stop" && done.FinishReason != "length") {
		t.Fatalf("last event %+v", events[len(events)-1])
	}
	if d := done.AudioDurationMS - len(whole)/48; d < -1 || d > 1 {
		t.Fatalf("done says %d ms for %d bytes", done.AudioDurationMS, len(whole))
	}
	seq := 0
	for _, ev := range events {
		if c, ok := ev.(*chattts.AudioChunk); ok {
			if c.Seq != seq {
				t.Fatalf("chunk %d has seq %d", seq, c.Seq)
			}
			seq++
		}
	}
	as, err := c.StreamAudio(ctx, itRequest())
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	rd := chattts.NewWAVReader(as)
	info, err := rd.Info()
	if err != nil {
		t.Fatal(err)
	}
	chunked, err := io.ReadAll(rd)
	if err != nil || info.DataBytes != -1 || info.SampleRate != 24000 || !bytes.Equal(chunked, streamed) {
		t.Fatalf("StreamAudio: %+v, %d bytes, %v", info, len(chunked), err)
	}
	as.Close()
	itOut(t, "synthesize.pcm", whole)
	itOut(t, "stream.pcm", streamed)
	itOut(t, "stream_audio.pcm", chunked)
	req, _ := json.Marshal(itRequest())
	itOut(t, "request.json", req)
	for _, rec := range logs.all(t) {
		if rec["outcome"] != "ok" || rec["text_hash"] != chattts.TextHash(itText) || rec["request_id"] == "" {
			t.Fatalf("record %v", rec)
		}
		if ms, _ := rec["audio_duration_ms"].(float64); int(ms) < len(whole)/48-1 {
			t.Fatalf("record %v", rec)
		}
	}
	if strings.Contains(logs.text(), "Hello world") {
		t.Fatal("the text was logged")
	}
}

// A whole file in a new trace, a stream in the caller's: each call's slog record names the
// trace it sent as traceparent, and the server answers with a span in that trace. The
// records are written to CHATTTS_IT_OUT (trace.jsonl) for tests/go to find the server's log
// line of each request and compare its trace id.
func TestIntegration_TraceContext(t *testing.T) {
	c, logs := itClient(t)
	audio, err := c.Synthesize(context.Background(), &chattts.TTSRequest{Text: "Trace me.", Seed: chattts.Ptr[int64](3)})
	if err != nil {
		t.Fatal(err)
	}
	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx := chattts.ContextWithTraceparent(context.Background(), caller)
	s, err := c.Stream(ctx, &chattts.TTSRequest{Text: "Trace me too.", Seed: chattts.Ptr[int64](3)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for s.Next() {
	}
	if s.Err() != nil || s.TraceID() != "0af7651916cd43dd8448eb211c80319c" || audio.TraceID == s.TraceID() {
		t.Fatal(s.Err(), audio.TraceID, s.TraceID())
	}
	s.Close()
	recs := logs.all(t)
	if len(recs) != 2 || recs[0]["trace_id"] != audio.TraceID || recs[0]["request_id"] != audio.RequestID ||
		recs[1]["trace_id"] != s.TraceID() || recs[1]["request_id"] != s.RequestID() {
		t.Fatalf("records %v", recs)
	}
	itOut(t, "trace.jsonl", []byte(logs.text()))
}

func TestIntegration_FormatsAndSampleRates(t *testing.T) {
	c, _ := itClient(t)
	ctx := context.Background()
	wav, err := c.Synthesize(ctx, itRequest())
	if err != nil {
		t.Fatal(err)
	}
	magic := map[string]string{"flac": "fLaC", "opus": "OggS"}
	for _, f := range []string{"pcm", "mp3", "flac", "opus", "aac"} {
		req := itRequest()
		req.Format = f
		a, err := c.Synthesize(ctx, req)
		if err != nil || a.Format != f || len(a.Data) == 0 {
			t.Fatalf("%s: %+v %v", f, a, err)
		}
		if m := magic[f]; m != "" && !bytes.HasPrefix(a.Data, []byte(m)) {
			t.Fatalf("%s starts with % x", f, a.Data[:8])
		}
		if f == "pcm" && !bytes.Equal(a.Data, pcmOf(t, wav)) {
			t.Fatal("pcm differs from the wav's samples")
		}
	}
	req := itRequest()
	req.SampleRate = 16000
	a, err := c.Synthesize(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	info, pcm, err := chattts.DecodeWAV(a.Data)
	if err != nil || info.SampleRate != 16000 || a.SampleRate != 16000 || len(pcm) == 0 {
		t.Fatalf("%+v %v", info, err)
	}
	// a streamed mp3 through the ring buffer
	req = itRequest()
	req.Format = "mp3"
	as, err := c.StreamAudio(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	data, err := io.ReadAll(as)
	if err != nil || len(data) < 100 || as.ContentType != "audio/mpeg" {
		t.Fatalf("%d bytes, %v, %s", len(data), err, as.ContentType)
	}
}

func TestIntegration_OpenAISpeech(t *testing.T) {
	c, _ := itClient(t)
	ctx := context.Background()
	a, err := c.Speech(ctx, &chattts.SpeechRequest{Model: "tts-1", Input: "Hello there.", Voice: "alloy", ResponseFormat: "wav"})
	if err != nil || a.Format != "wav" || len(pcmOf(t, a)) == 0 {
		t.Fatal(a, err)
	}
	s, err := c.SpeechStream(ctx, &chattts.SpeechRequest{Input: "Hello there.", Voice: "echo", ResponseFormat: "pcm"})
	if err != nil {
		t.Fatal(err)
	}
	var pcm []byte
	for s.Next() {
		pcm = append(pcm, s.Delta()...)
	}
	s.Close()
	u := s.Usage()
	if s.Err() != nil || len(pcm) == 0 || len(pcm)%2 != 0 || u == nil || u.InputTokens != len("Hello there.") || u.TotalTokens != u.InputTokens+u.OutputTokens {
		t.Fatalf("%d bytes, %+v, %v", len(pcm), u, s.Err())
	}
	as, err := c.SpeechAudio(ctx, &chattts.SpeechRequest{Input: "你好。", Voice: "seed:9", Speed: chattts.Ptr(3.0)})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(as)
	as.Close()
	if err != nil || len(data) == 0 || as.Format != "mp3" {
		t.Fatalf("%d bytes %v %s", len(data), err, as.Format)
	}
}

func TestIntegration_VoiceLibrary(t *testing.T) {
	c, _ := itClient(t)
	ctx := context.Background()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000_000)
	seedName, spkName, refName := "go-seed-"+suffix, "go-spk-"+suffix, "go-ref-"+suffix
	v, err := c.Voices.Create(ctx, &chattts.VoiceCreate{Name: seedName, Seed: chattts.Ptr[int64](42), Description: "calm",
		Language: "en-US", Defaults: &chattts.VoiceDefaults{Speed: chattts.Ptr(1.25)}})
	if err != nil || v.ID != seedName || v.Kind != "seed" || *v.Seed != 42 || *v.Language != "en" || *v.Defaults.Speed != 1.25 {
		t.Fatalf("%+v %v", v, err)
	}
	_, err = c.Voices.Create(ctx, &chattts.VoiceCreate{Name: seedName, Seed: chattts.Ptr[int64](1)})
	var api *chattts.APIError
	if !errors.As(err, &api) || api.StatusCode != 409 || api.Code != "voice_exists" {
		t.Fatalf("duplicate: %v", err)
	}
	got, err := c.Voices.Get(ctx, seedName)
	if err != nil || *got.Description != "calm" {
		t.Fatal(got, err)
	}
	up, err := c.Voices.Update(ctx, seedName, chattts.VoicePatch{Description: chattts.Ptr("warm"), Clear: []string{"language"}})
	if err != nil || *up.Description != "warm" || up.Language != nil {
		t.Fatalf("%+v %v", up, err)
	}
	list, err := c.Voices.List(ctx)
	if err != nil || list[0].ID != "alloy" || list[0].Kind != "builtin" {
		t.Fatal(list, err)
	}
	found := false
	for _, lv := range list {
		found = found || lv.ID == seedName
	}
	if !found {
		t.Fatal("the new voice is not listed")
	}
	s1, err := c.Voices.Sample(ctx, seedName, chattts.SampleOptions{Text: "Hi there."})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := c.Voices.Sample(ctx, seedName, chattts.SampleOptions{Text: "Hi there.", Format: "wav"})
	if err != nil || !bytes.Equal(s1.Data, s2.Data) || len(pcmOf(t, s1)) == 0 {
		t.Fatal("samples are not deterministic", err)
	}
	doc, err := c.Voices.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var spk string
	for _, raw := range doc.Voices {
		var stored struct {
			Name   string `json:"name"`
			SpkEmb string `json:"spk_emb"`
		}
		json.Unmarshal(raw, &stored)
		if stored.Name == seedName {
			spk = stored.SpkEmb
		}
	}
	if spk == "" {
		t.Fatal("the export has no speaker string for the seed voice")
	}
	if v, err := c.Voices.Create(ctx, &chattts.VoiceCreate{Name: spkName, SpkEmb: spk}); err != nil || v.Kind != "spk_emb" {
		t.Fatal(v, err)
	}
	clip, err := c.Synthesize(ctx, itRequest())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Voices.Create(ctx, &chattts.VoiceCreate{Name: refName, RefAudio: clip.Data, RefText: itText}); err != nil || v.Kind != "ref_audio" {
		t.Fatal(v, err)
	}
	// the same speaker string: a seed voice and a spk_emb voice sound the same
	bySeed, err := c.Synthesize(ctx, &chattts.TTSRequest{Text: "Same voice.", Voice: seedName, ManualSeed: chattts.Ptr[int64](1), Speed: chattts.Ptr(1.0)})
	if err != nil {
		t.Fatal(err)
	}
	bySpk, err := c.Synthesize(ctx, &chattts.TTSRequest{Text: "Same voice.", VoiceID: spkName, ManualSeed: chattts.Ptr[int64](1)})
	if err != nil || !bytes.Equal(bySeed.Data, bySpk.Data) {
		t.Fatal("a voice from the exported speaker string sounds different", err)
	}
	if _, err := c.Synthesize(ctx, &chattts.TTSRequest{Text: "Cloned.", Voice: refName}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{seedName, spkName, refName} {
		if err := c.Voices.Delete(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Voices.Get(ctx, seedName); !errors.As(err, &api) || api.StatusCode != 404 || api.Code != "voice_not_found" {
		t.Fatalf("after delete: %v", err)
	}
	res, err := c.Voices.Import(ctx, doc, false)
	if err != nil || !contains(res.Imported, seedName) {
		t.Fatalf("%+v %v", res, err)
	}
	res, err = c.Voices.Import(ctx, doc, false)
	if err != nil || !contains(res.Skipped, seedName) {
		t.Fatalf("%+v %v", res, err)
	}
	if res, err = c.Voices.Import(ctx, doc, true); err != nil || !contains(res.Imported, seedName) {
		t.Fatalf("%+v %v", res, err)
	}
	if err := c.Voices.Delete(ctx, seedName); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A 4xx is typed, carries the request id we sent, and is not retried (one attempt).
func TestIntegration_ErrorsAreTypedAndNotRetried(t *testing.T) {
	c, logs := itClient(t, chattts.WithoutValidation())
	ctx := chattts.ContextWithRequestID(context.Background(), "go-it-404")
	_, err := c.Synthesize(ctx, &chattts.TTSRequest{Text: "Hi.", Voice: "nobody-here"})
	var api *chattts.APIError
	if !errors.As(err, &api) || api.StatusCode != 404 || api.Code != "voice_not_found" || api.Param != "voice" || api.RequestID != "go-it-404" {
		t.Fatalf("%#v", err)
	}
	for _, tc := range []struct {
		req         *chattts.TTSRequest
		code, param string
	}{
		{&chattts.TTSRequest{Text: "  "}, "empty_text", "text"},
		{&chattts.TTSRequest{Text: "Hi.", Lang: "ja-JP"}, "unsupported_language", "lang"},
		{&chattts.TTSRequest{Text: "Hi.", Voice: "alloy", VoiceID: "echo"}, "conflicting_voice", "voice_id"},
		{&chattts.TTSRequest{Text: "Hi.", Speed: chattts.Ptr(3.0)}, "", "speed"},
	} {
		_, err := c.Synthesize(context.Background(), tc.req)
		if !errors.As(err, &api) || api.StatusCode != 400 || (tc.code != "" && api.Code != tc.code) || api.Param != tc.param {
			t.Errorf("%+v: %v", tc.req, err)
		}
	}
	for _, rec := range logs.all(t) {
		if rec["attempts"] != 1.0 || rec["outcome"] != "error" {
			t.Fatalf("a 4xx was retried: %v", rec)
		}
	}
	if st := c.BreakerStates()[itURL(t)]; st != chattts.BreakerClosed {
		t.Fatal("4xx answers opened the breaker")
	}
}

// Validate and the server agree: what Validate refuses the server refuses with the same
// code and param, and what it accepts the server synthesizes.
func TestIntegration_ValidateAgreesWithTheServer(t *testing.T) {
	c, _ := itClient(t, chattts.WithoutValidation())
	fast := map[string]any{"max_new_tokens": 2}
	cases := []*chattts.TTSRequest{
		{Text: "Hi.", Lang: "zh-CN"}, {Text: "Hi.", Lang: "en-US"}, {Text: "Hi.", Lang: "zh-Hans"}, {Text: "Hi.", Lang: "zh-TW"},
		{Text: "Hi.", Lang: "cmn"}, {Text: "Hi.", Lang: "EN-gb"}, {Text: "Hi.", Lang: "zh_CN"}, {Text: "Hi.", Lang: "en"},
		{Text: "Hi.", Lang: "ja-JP"}, {Text: "Hi.", Lang: "english"}, {Text: "Hi.", Lang: "fr"}, {Text: "Hi.", Lang: "zh-"},
		{Text: "Hi.", VoiceID: "alloy"}, {Text: "Hi.", Voice: "alloy", VoiceID: "alloy"}, {Text: "Hi.", Voice: "alloy", VoiceID: "echo"},
		{Text: "Hi.", VoiceID: "seed:7"}, {Text: "Hi.", Voice: "seed:007"}, {Text: "Hi.", Voice: "seed:4294967296"},
		{Text: "Hi.", VoiceID: "alloy", Seed: chattts.Ptr[int64](3)},
		{Text: "Hi.", Temperature: chattts.Ptr(1e-5), TopP: chattts.Ptr(1e-5)}, {Text: "Hi.", TopP: chattts.Ptr(1e-6)},
		{Text: "Hi.", TopK: chattts.Ptr(627)}, {Text: "Hi.", Seed: chattts.Ptr[int64](-1)},
		{Text: "🙂🙂"}, {Text: "42"}, {Text: "hi [shout]"}, {Text: "[laugh]"}, {Text: "bell\x07"},
		{Text: "Hi.", Format: "opus", SampleRate: 44100}, {Text: "Hi.", Format: "opus", SampleRate: 48000},
		{Text: "Hi.", RefinePrompt: "[oral_2][break_6]"}, {Text: "Hi.", RefinePrompt: "[oral_2] nice"},
		{Text: "Hi.", RefText: "orphan"}, {Text: "Hi.", Pauses: &chattts.Pauses{Comma: 10001}},
	}
	for _, req := range cases {
		req.Extensions = fast
		verdict := req.Validate()
		_, err := c.Synthesize(context.Background(), req)
		var ve *chattts.ValidationError
		var api *chattts.APIError
		switch {
		case verdict == nil && err != nil:
			t.Errorf("%+v: Validate accepts, the server says %v", req, err)
		case verdict != nil && !errors.As(verdict, &ve):
			t.Errorf("%+v: %v", req, verdict)
		case verdict != nil && !errors.As(err, &api):
			t.Errorf("%+v: Validate says %v, the server accepts (%v)", req, verdict, err)
		case verdict != nil && (api.StatusCode != 400 || api.Param != ve.Param || (api.Code != ve.Code && !(ve.Code == "out_of_range" && api.Code == "invalid_value"))):
			t.Errorf("%+v: Validate says %s on %s, the server %d %s on %s", req, ve.Code, ve.Param, api.StatusCode, api.Code, api.Param)
		}
	}
}

// The original description's chapter-1 call, as written: http.Client.Post to
// /v1/tts?stream=true with {text, seed, stream: true}, no Accept header, the body read as
// text/event-stream. Then the README's five-line version with this package.
func TestIntegration_Chapter1Flow(t *testing.T) {
	base := itURL(t)
	type TTSRequest struct {
		Text   string `json:"text"`
		Seed   int    `json:"seed"`
		Stream bool   `json:"stream"`
	}
	payload, _ := json.Marshal(TTSRequest{Text: "你好，世界。", Seed: 42, Stream: true})
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConns: 100,
		MaxIdleConnsPerHost: 100, IdleConnTimeout: 30 * time.Second}}
	resp, err := client.Post(base+"/v1/tts?stream=true", "application/json", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("the chapter-1 call got %d %s, not an event stream", resp.StatusCode, ct)
	}
	var dec chattts.SSEDecoder
	var events []chattts.SSEEvent
	buf := make([]byte, 8192)
	for {
		n, rerr := resp.Body.Read(buf)
		if events, err = dec.Append(events, buf[:n]); err != nil {
			t.Fatal(err)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			t.Fatal(rerr)
		}
	}
	audio := 0
	for _, ev := range events {
		if ev.Event == "audio" && len(ev.Data) > 0 {
			audio++
			fmt.Printf("音频片段长度:%d 字节\n", len(ev.Data))
		}
	}
	if audio == 0 || events[len(events)-1].Event != "done" {
		t.Fatalf("%d audio events, last %q", audio, events[len(events)-1].Event)
	}
	// README: the same flow with this client, into a WAV file
	path := filepath.Join(t.TempDir(), "hello.wav")
	tts, _ := chattts.New(base, chattts.WithRetries(2), chattts.WithTimeout(60*time.Second))
	stream, err := tts.Stream(context.Background(), &chattts.TTSRequest{Text: "你好，世界。", Seed: chattts.Ptr[int64](42)})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(path)
	done, err := stream.WriteWAV(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	info, pcm, err := chattts.DecodeWAV(data)
	if err != nil || info.DataBytes != int64(len(pcm)) || info.SampleRate != 24000 || int(info.DurationMS(int64(len(pcm)))) < done.AudioDurationMS-1 {
		t.Fatalf("%+v %d %v %+v", info, len(pcm), err, done)
	}
	// the base64 of the chapter-1 events decodes to PCM of the same length as the client's
	raw := 0
	for _, ev := range events {
		if e, _ := chattts.ParseEvent(ev); e != nil {
			if c, ok := e.(*chattts.AudioChunk); ok {
				raw += len(c.PCM)
			}
		}
	}
	if raw == 0 || base64.StdEncoding.EncodedLen(raw) < raw {
		t.Fatal(raw)
	}
}

// Cancelling the context ends the stream, closes the connection, and the server stops
// synthesizing (its in-flight gauge returns to 0). The synthesis is held running by asking
// for CHATTTS_IT_HOLD_TOKENS GPT steps (tests/go raises the test server's token limit so far
// that it never ends on its own): the cancel always comes first, whatever the machine's speed.
func TestIntegration_CancelStopsTheServer(t *testing.T) {
	hold := os.Getenv("CHATTTS_IT_HOLD_TOKENS")
	if hold == "" {
		itURL(t)
		t.Skip("CHATTTS_IT_HOLD_TOKENS is not set: no way to hold a synthesis running")
	}
	var tokens int
	fmt.Sscan(hold, &tokens)
	c, logs := itClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Stream(ctx, &chattts.TTSRequest{Text: "Endless.", Seed: chattts.Ptr[int64](1),
		Extensions: map[string]any{"min_new_tokens": tokens, "max_new_tokens": tokens}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for s.Next() {
		if _, ok := s.Event().(*chattts.AudioChunk); ok {
			break
		}
	}
	if s.Err() != nil || inFlight(t, itURL(t)) != "1" {
		t.Fatalf("no audio while synthesizing: %v", s.Err())
	}
	cancel()
	for s.Next() {
	}
	if !errors.Is(s.Err(), context.Canceled) || s.Done() != nil {
		t.Fatalf("got %v, done %v", s.Err(), s.Done())
	}
	deadline := time.Now().Add(60 * time.Second) // a failure guard, not a speed assumption
	for inFlight(t, itURL(t)) != "0" {
		if time.Now().After(deadline) {
			t.Fatal("the server kept synthesizing after the client went away")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recs := logs.all(t); recs[0]["outcome"] != "cancelled" {
		t.Fatalf("%v", recs)
	}
}

func inFlight(t *testing.T, base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "chattts_in_flight "); ok {
			return strings.TrimSuffix(v, ".0")
		}
	}
	t.Fatal("no chattts_in_flight metric")
	return ""
}

// --- the secure server: API key and mTLS ------------------------------------------------

func secureEnv(t *testing.T) (key, ca, cert, keyFile string) {
	itURL(t)
	key, ca, cert, keyFile = os.Getenv("CHATTTS_IT_API_KEY"), os.Getenv("CHATTTS_IT_CA"), os.Getenv("CHATTTS_IT_CERT"), os.Getenv("CHATTTS_IT_KEY")
	if key == "" || ca == "" || cert == "" || keyFile == "" {
		t.Skip("CHATTTS_IT_API_KEY, _CA, _CERT and _KEY are not all set")
	}
	return
}

func TestIntegrationSecure_MTLSAndAPIKeyWork(t *testing.T) {
	key, ca, cert, keyFile := secureEnv(t)
	if !strings.HasPrefix(itURL(t), "https://") {
		t.Fatal("the secure server is not https")
	}
	c, logs := itClient(t, chattts.WithAPIKey(key), chattts.WithTLSFiles(ca, cert, keyFile))
	ctx := context.Background()
	if r, err := c.Ready(ctx); err != nil || !r.Ready {
		t.Fatal(r, err)
	}
	if list, err := c.Voices.List(ctx); err != nil || len(list) == 0 {
		t.Fatal(err)
	}
	a, err := c.Synthesize(ctx, itRequest())
	if err != nil || len(pcmOf(t, a)) == 0 {
		t.Fatal(err)
	}
	s, err := c.Stream(ctx, itRequest())
	if err != nil {
		t.Fatal(err)
	}
	if pcm, _ := streamPCM(t, s); streamMatches(pcm, pcmOf(t, a)) != nil {
		t.Fatal("stream and synthesize differ over mTLS:", streamMatches(pcm, pcmOf(t, a)))
	}
	if strings.Contains(logs.text(), key) {
		t.Fatal("the API key was logged")
	}
}

func TestIntegrationSecure_WrongOrMissingKeyIs401AndNeverShown(t *testing.T) {
	key, ca, cert, keyFile := secureEnv(t)
	const wrong = "sk-go-wrong-9c1f0e"
	for _, tc := range []struct{ key, code string }{{wrong, "invalid_api_key"}, {"", "missing_api_key"}} {
		opts := []chattts.Option{chattts.WithTLSFiles(ca, cert, keyFile)}
		if tc.key != "" {
			opts = append(opts, chattts.WithAPIKey(tc.key))
		}
		c, logs := itClient(t, opts...)
		_, err := c.Synthesize(context.Background(), itRequest())
		var api *chattts.APIError
		if !errors.As(err, &api) || api.StatusCode != 401 || api.Code != tc.code {
			t.Fatalf("%s: %v", tc.code, err)
		}
		for _, secret := range []string{key, wrong} {
			if strings.Contains(err.Error(), secret) || strings.Contains(logs.text(), secret) || strings.Contains(fmt.Sprintf("%#v", api), secret) {
				t.Fatal("a key was shown")
			}
		}
		if recs := logs.all(t); recs[0]["attempts"] != 1.0 {
			t.Fatalf("a 401 was retried: %v", recs)
		}
	}
}

func TestIntegrationSecure_NoClientCertificateOrUnknownCAFailsAsTransport(t *testing.T) {
	key, ca, _, _ := secureEnv(t)
	for name, opts := range map[string][]chattts.Option{
		"no client certificate": {chattts.WithTLSFiles(ca, "", "")},
		"unknown CA":            {},
	} {
		c, _ := itClient(t, append(opts, chattts.WithAPIKey(key), chattts.WithRetries(0))...)
		_, err := c.Voices.List(context.Background())
		var te *chattts.TransportError
		var api *chattts.APIError
		if !errors.As(err, &te) || errors.As(err, &api) {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "unknown CA" && (te.RequestSent || !strings.Contains(err.Error(), "certificate")) {
			t.Fatalf("%s: %v (sent %v)", name, err, te.RequestSent)
		}
	}
}
