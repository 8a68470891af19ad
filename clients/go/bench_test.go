package chattts

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"
)

// sseStream is a stream as the server sends it: audio events of chunkMS of 24 kHz PCM
// (base64), each followed by a progress event, keep-alives, then done.
func sseStream(events, chunkMS int) []byte {
	pcm := make([]byte, 24*chunkMS*2)
	for i := range pcm {
		pcm[i] = byte(i * 31)
	}
	var b bytes.Buffer
	for i := 0; i < events; i++ {
		b.WriteString(audioEvent(i, pcm))
		b.WriteString(progressEvent(i+1, events))
		if i%4 == 0 {
			b.WriteString(": keep-alive\n\n")
		}
	}
	b.WriteString(doneEvent(events * chunkMS))
	return b.Bytes()
}

func benchDecode(b *testing.B, stream []byte, parse bool) {
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var events []SSEEvent
	for i := 0; i < b.N; i++ {
		var d SSEDecoder
		n := 0
		for off := 0; off < len(stream); off += 32 << 10 { // 32 KiB network reads
			end := min(off+32<<10, len(stream))
			events, _ = d.Append(events[:0], stream[off:end])
			n += len(events)
			if parse {
				for _, ev := range events {
					if _, err := ParseEvent(ev); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		if n == 0 {
			b.Fatal("no events")
		}
	}
}

// BenchmarkSSEDecode: the incremental SSE decoder alone, on a server-like stream of 1.36 s
// audio chunks (64 GPT steps: the server's largest), fed in 32 KiB reads.
func BenchmarkSSEDecode(b *testing.B) { benchDecode(b, sseStream(40, 1365), false) }

// BenchmarkSSEDecodeParse: decoding plus typed events (JSON + base64 to PCM).
func BenchmarkSSEDecodeParse(b *testing.B) { benchDecode(b, sseStream(40, 1365), true) }

// BenchmarkSSEDecodeSmallEvents: many small events (progress, short first chunks).
func BenchmarkSSEDecodeSmallEvents(b *testing.B) { benchDecode(b, sseStream(2000, 20), false) }

// overheadServer answers like the server, with a small WAV (100 ms) or a short SSE
// stream, so that the client's own cost shows.
func overheadServer(b *testing.B) *httptest.Server {
	wav := append(WAVHeader(24000, 4800), make([]byte, 4800)...)
	sse := sseStream(3, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		if r.URL.RawQuery == "stream=true" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write(sse)
			return
		}
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("X-Sample-Rate", "24000")
		w.Header().Set("X-Audio-Duration-Ms", "100")
		w.Write(wav)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkSynthesizeOverhead: one whole-file call against a local fake server, raw
// net/http (marshal, POST, read) vs Synthesize (validation, request id, breaker, budget,
// watchdog, one slog record to a discarding handler). The difference is the client's
// overhead per request.
func BenchmarkSynthesizeOverhead(b *testing.B) {
	srv := overheadServer(b)
	req := &TTSRequest{Text: "你好，欢迎使用语音合成。Hello and welcome.", Seed: Ptr[int64](42), Lang: "zh-CN"}
	b.Run("raw-net-http", func(b *testing.B) {
		hc := &http.Client{}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if status, n := rawSynthesize(b, hc, srv.URL, req); status != 200 || n != 4844 {
				b.Fatal(status, n)
			}
		}
	})
	b.Run("chattts-client", func(b *testing.B) {
		c, err := New(srv.URL, WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			audio, err := c.Synthesize(context.Background(), req)
			if err != nil || len(audio.Data) != 4844 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSynthesizeOverheadPaired alternates a raw net/http call and a Synthesize call in
// every iteration and reports the medians of each and of their paired difference: on a
// busy machine, load drifts hit both sides of a pair alike.
func BenchmarkSynthesizeOverheadPaired(b *testing.B) {
	srv := overheadServer(b)
	req := &TTSRequest{Text: "你好，欢迎使用语音合成。Hello and welcome.", Seed: Ptr[int64](42), Lang: "zh-CN"}
	hc := &http.Client{}
	c, err := New(srv.URL, WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	raw := func() { rawSynthesize(b, hc, srv.URL, req) }
	client := func() {
		if _, err := c.Synthesize(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	paired(b, raw, client)
}

// rawSynthesize is a whole-file call made with net/http alone (marshal, POST, read): the
// status and the size of the answer.
func rawSynthesize(b *testing.B, hc *http.Client, url string, req *TTSRequest) (status, n int) {
	body, _ := json.Marshal(wireTTS{TTSRequest: req})
	resp, err := hc.Post(url+"/v1/tts", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, len(data)
}

// rawStream is a stream read with net/http, SSEDecoder and ParseEvent alone, through buf:
// the number of audio chunks.
func rawStream(b *testing.B, hc *http.Client, url string, req *TTSRequest, buf []byte) int {
	body, _ := json.Marshal(wireTTS{TTSRequest: req, Stream: true})
	hr, _ := http.NewRequest("POST", url+"/v1/tts?stream=true", bytes.NewReader(body))
	hr.Header.Set("Accept", "text/event-stream")
	hr.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hr)
	if err != nil {
		b.Fatal(err)
	}
	var d SSEDecoder
	var events []SSEEvent
	chunks := 0
	for {
		n, rerr := resp.Body.Read(buf)
		events, _ = d.Append(events[:0], buf[:n])
		for _, ev := range events {
			if e, _ := ParseEvent(ev); e != nil {
				if _, ok := e.(*AudioChunk); ok {
					chunks++
				}
			}
		}
		if rerr != nil {
			break
		}
	}
	resp.Body.Close()
	return chunks
}

// paired runs raw and client alternately and reports the medians of each and of their
// difference.
func paired(b *testing.B, raw, client func()) {
	raws, clients, diffs := make([]float64, 0, b.N), make([]float64, 0, b.N), make([]float64, 0, b.N)
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		raw()
		t1 := time.Now()
		client()
		t2 := time.Now()
		r, cl := float64(t1.Sub(t0).Nanoseconds()), float64(t2.Sub(t1).Nanoseconds())
		raws, clients, diffs = append(raws, r), append(clients, cl), append(diffs, cl-r)
	}
	b.ReportMetric(median(raws), "raw-ns/call")
	b.ReportMetric(median(clients), "client-ns/call")
	b.ReportMetric(median(diffs), "overhead-ns/call")
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkStreamOverheadPaired: a short stream (3 chunks), raw net/http + SSEDecoder +
// ParseEvent against Client.Stream, alternated in each iteration.
func BenchmarkStreamOverheadPaired(b *testing.B) {
	srv := overheadServer(b)
	req := &TTSRequest{Text: "One. Two. Three.", Seed: Ptr[int64](42)}
	hc := &http.Client{}
	c, _ := New(srv.URL, WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
	raw := func() { rawStream(b, hc, srv.URL, req, make([]byte, 32<<10)) }
	client := func() {
		s, err := c.Stream(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		for s.Next() {
		}
		s.Close()
	}
	paired(b, raw, client)
}

// BenchmarkStreamOverhead: a short SSE stream (3 audio chunks), raw net/http with this
// package's SSEDecoder and ParseEvent vs Client.Stream.
func BenchmarkStreamOverhead(b *testing.B) {
	srv := overheadServer(b)
	req := &TTSRequest{Text: "One. Two. Three.", Seed: Ptr[int64](42)}
	b.Run("raw-net-http", func(b *testing.B) {
		hc := &http.Client{}
		buf := make([]byte, 32<<10)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if chunks := rawStream(b, hc, srv.URL, req, buf); chunks != 3 {
				b.Fatal(chunks)
			}
		}
	})
	b.Run("chattts-client", func(b *testing.B) {
		c, _ := New(srv.URL, WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			s, err := c.Stream(context.Background(), req)
			if err != nil {
				b.Fatal(err)
			}
			chunks := 0
			for s.Next() {
				if _, ok := s.Event().(*AudioChunk); ok {
					chunks++
				}
			}
			s.Close()
			if s.Err() != nil || chunks != 3 {
				b.Fatal(s.Err(), chunks)
			}
		}
	})
}

func TestBenchmarkStreamsAreWellFormed(t *testing.T) {
	for _, stream := range [][]byte{sseStream(40, 1365), sseStream(2000, 20)} {
		evs, _ := decodeAll(t, stream)
		audio := 0
		for _, ev := range evs {
			e, err := ParseEvent(ev)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := e.(*AudioChunk); ok {
				audio++
			}
		}
		if audio == 0 || !strings.HasPrefix(evs[len(evs)-1].Event, "done") {
			t.Fatal(audio, evs[len(evs)-1].Event)
		}
	}
}
