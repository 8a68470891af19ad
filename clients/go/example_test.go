package chattts_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	chattts "github.com/chattts-server/chattts-server/clients/go"
)

// fakeServer stands in for chattts-server in the examples: SSE for streams, a WAV file
// otherwise, and a 503 for the text "overloaded".
func fakeServer() *httptest.Server {
	pcm := make([]byte, 4800) // 100 ms of silence at 24 kHz
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Text   string `json:"text"`
			Stream bool   `json:"stream"`
			Format string `json:"format"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		switch {
		case req.Text == "overloaded":
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
			io.WriteString(w, `{"error":{"message":"busy","type":"overloaded_error","param":null,"code":"overloaded","request_id":null}}`)
		case req.Stream && r.Header.Get("Accept") == "text/event-stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for seq := 0; seq < 3; seq++ {
				fmt.Fprintf(w, "event: audio\ndata: {\"seq\":%d,\"sample_rate\":24000,\"format\":\"pcm_s16le\",\"audio\":%q}\n\n",
					seq, base64.StdEncoding.EncodeToString(pcm))
				fmt.Fprintf(w, "event: progress\ndata: {\"sentences_done\":%d,\"sentences_total\":3,\"audio_ms\":%d}\n\n", seq+1, 100*(seq+1))
			}
			io.WriteString(w, "event: done\ndata: {\"request_id\":\"r\",\"audio_duration_ms\":300,\"elapsed_ms\":20,\"time_to_first_audio_ms\":5,\"finish_reason\":\"stop\"}\n\n")
		default:
			w.Header().Set("Content-Type", "audio/wav")
			w.Header().Set("X-Sample-Rate", "24000")
			w.Header().Set("X-Audio-Duration-Ms", "100")
			size := int64(len(pcm))
			if req.Stream {
				size = -1
			}
			w.Write(chattts.WAVHeader(24000, size))
			w.Write(pcm)
		}
	}))
}

var quiet = chattts.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// The original description's chapter-1 flow: a typed request, SSE streaming, the PCM
// wrapped as WAV, retries on 503 and timeouts, a fallback prompt.
func Example() {
	srv := fakeServer()
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "chattts-example")
	defer os.RemoveAll(dir)

	tts, _ := chattts.New(srv.URL, chattts.WithRetries(2), quiet)
	stream, err := tts.Stream(context.Background(), &chattts.TTSRequest{Text: "你好，世界。", Seed: chattts.Ptr[int64](42)})
	if err != nil {
		panic(err)
	}
	f, _ := os.Create(filepath.Join(dir, "hello.wav"))
	done, err := stream.WriteWAV(f) // header first, exact sizes patched in at the end
	f.Close()

	data, _ := os.ReadFile(filepath.Join(dir, "hello.wav"))
	info, pcm, _ := chattts.DecodeWAV(data)
	fmt.Println(err, done.AudioDurationMS, "ms;", info.SampleRate, "Hz;", len(pcm), "bytes of PCM")
	// Output: <nil> 300 ms; 24000 Hz; 14400 bytes of PCM
}

func ExampleClient_Stream() {
	srv := fakeServer()
	defer srv.Close()
	tts, _ := chattts.New(srv.URL, quiet)

	stream, err := tts.Stream(context.Background(), &chattts.TTSRequest{Text: "One. Two. Three.", Lang: "en-US"})
	if err != nil {
		panic(err)
	}
	defer stream.Close()
	for ev := range stream.Events() {
		switch e := ev.(type) {
		case *chattts.AudioChunk:
			fmt.Println("audio", e.Seq, len(e.PCM), "bytes") // play e.PCM (s16le mono)
		case *chattts.Progress:
			fmt.Printf("%d/%d sentences\n", e.SentencesDone, e.SentencesTotal)
		case *chattts.Done:
			fmt.Println("done:", e.FinishReason)
		}
	}
	if err := stream.Err(); err != nil {
		fmt.Println("failed:", err) // errors.Is(err, chattts.ErrStreamInterrupted) after audio
	}
	// Output:
	// audio 0 4800 bytes
	// 1/3 sentences
	// audio 1 4800 bytes
	// 2/3 sentences
	// audio 2 4800 bytes
	// 3/3 sentences
	// done: stop
}

// Streaming playback in bounded memory: the AudioStream is an io.Reader of a streamed
// WAV; a slow reader slows the network read, and memory stays at the ring buffer.
func ExampleClient_StreamAudio() {
	srv := fakeServer()
	defer srv.Close()
	tts, _ := chattts.New(srv.URL, chattts.WithStreamBuffer(64<<10), quiet)

	audio, err := tts.StreamAudio(context.Background(), &chattts.TTSRequest{Text: "A long story.", Format: "wav"})
	if err != nil {
		panic(err)
	}
	defer audio.Close()
	player := chattts.NewWAVReader(audio) // stands in for a sound card
	info, _ := player.Info()
	n, err := io.Copy(io.Discard, player)
	fmt.Println(audio.ContentType, info.SampleRate, n, err)
	// Output: audio/wav 24000 4800 <nil>
}

func ExampleClient_Synthesize_fallback() {
	srv := fakeServer()
	defer srv.Close()
	sorry := append(chattts.WAVHeader(24000, 2400), make([]byte, 2400)...)
	tts, _ := chattts.New(srv.URL, chattts.WithRetries(2), chattts.WithBackoff(time.Millisecond, 10*time.Millisecond),
		chattts.WithFallbackAudio(sorry, "wav"), quiet)

	audio, err := tts.Synthesize(context.Background(), &chattts.TTSRequest{Text: "overloaded"})
	var apiErr *chattts.APIError
	switch {
	case errors.Is(err, chattts.ErrFallbackUsed) && errors.As(err, &apiErr):
		fmt.Println("fallback played:", audio.Fallback, audio.DurationMS, "ms; server said", apiErr.StatusCode, apiErr.Code)
	case err != nil:
		fmt.Println("failed:", err)
	}
	// Output: fallback played: true 50 ms; server said 503 overloaded
}

func ExampleTTSRequest_Validate() {
	req := &chattts.TTSRequest{Text: "Bonjour.", Lang: "fr-FR", VoiceID: "alloy"}
	err := req.Validate()
	var invalid *chattts.ValidationError
	if errors.As(err, &invalid) {
		fmt.Println(invalid.Param, invalid.Code)
	}
	req.Lang = "en-GB"
	fmt.Println(req.Validate())
	// Output:
	// lang unsupported_language
	// <nil>
}

func ExampleSSEDecoder() {
	var dec chattts.SSEDecoder
	var events []chattts.SSEEvent
	for _, piece := range []string{"event: prog", "ress\ndata: {\"sentences_done\":1,", "\"sentences_total\":2,\"audio_ms\":9}\n", "\n: keep-alive\n\n"} {
		events, _ = dec.Append(events, []byte(piece)) // pieces split anywhere
	}
	ev, _ := chattts.ParseEvent(events[0])
	fmt.Printf("%d event: %+v\n", len(events), *ev.(*chattts.Progress))
	// Output: 1 event: {SentencesDone:1 SentencesTotal:2 AudioMS:9}
}

func ExampleWAVHeader() {
	pcm := make([]byte, 48000) // one second at 24 kHz
	file := append(chattts.WAVHeader(24000, int64(len(pcm))), pcm...)
	streaming := chattts.WAVHeader(24000, -1) // sizes unknown: 0xFFFFFFFF
	info, data, _ := chattts.DecodeWAV(file)
	fmt.Println(len(file), info.DurationMS(int64(len(data))), bytes.Equal(streaming[40:], []byte{0xff, 0xff, 0xff, 0xff}))
	// Output: 48044 1000 true
}
