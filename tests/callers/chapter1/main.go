// Command chapter1 is the caller of the original description, written as its chapters 1 and 3
// tell it, with the standard library only: a typed request, http.Client.Post (no Accept
// header) to /v1/tts?stream=true, the body read as text/event-stream event by event, and a
// chapter-3 request (BCP-47 lang, voice_id, speed, pauses) answered with a WAV file.
//
// Usage: chapter1 BASE_URL OUT_DIR. It writes OUT_DIR/stream.pcm (the audio events' PCM, in
// order), OUT_DIR/chapter3.wav and OUT_DIR/summary.json (what it saw), and exits non-zero on
// any failure.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TTSRequest is chapter 1's request struct (plus manual_seed, one of the "other optional
// fields, added as needed").
type TTSRequest struct {
	Text       string `json:"text"`
	Seed       int    `json:"seed"`
	Stream     bool   `json:"stream"`
	ManualSeed int    `json:"manual_seed"`
}

// Chapter3Request is chapter 3's multi-language request struct.
type Chapter3Request struct {
	Text       string         `json:"text"`
	Lang       string         `json:"lang"`
	VoiceID    string         `json:"voice_id"`
	Speed      float32        `json:"speed"`
	Pauses     map[string]int `json:"pauses"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

// Event is one server-sent event.
type Event struct {
	Name string
	Data string
}

// decode reads events from an event stream (the part of github.com/CloudyKit/sse the chapter
// uses: event names and data lines; comments skipped).
func decode(r io.Reader, each func(Event) error) error {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	var ev Event
	var data []string
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				ev.Data = strings.Join(data, "\n")
				if err := each(ev); err != nil {
					return err
				}
			}
			ev, data = Event{}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
	return scanner.Err()
}

type summary struct {
	StreamStatus      int            `json:"stream_status"`
	StreamContentType string         `json:"stream_content_type"`
	Events            map[string]int `json:"events"`
	Done              map[string]any `json:"done"`
	Chapter3Status    int            `json:"chapter3_status"`
	Chapter3Type      string         `json:"chapter3_content_type"`
}

func run(base, out string) error {
	client := &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        100,
			MaxIdleConnsPerHost: 100,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	sum := summary{Events: map[string]int{}}

	payload, _ := json.Marshal(TTSRequest{
		Text: "Hello from Go. 你好，世界。", Seed: 5, Stream: true, ManualSeed: 3,
	})
	resp, err := client.Post(base+"/v1/tts?stream=true", "application/json", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sum.StreamStatus, sum.StreamContentType = resp.StatusCode, resp.Header.Get("Content-Type")
	var pcm bytes.Buffer
	err = decode(resp.Body, func(ev Event) error {
		sum.Events[ev.Name]++
		fmt.Printf("event %s: %d bytes of data\n", ev.Name, len(ev.Data))
		switch ev.Name {
		case "audio":
			var audio struct {
				Audio string `json:"audio"`
			}
			if err := json.Unmarshal([]byte(ev.Data), &audio); err != nil {
				return err
			}
			raw, err := base64.StdEncoding.DecodeString(audio.Audio)
			if err != nil {
				return err
			}
			pcm.Write(raw)
		case "done":
			return json.Unmarshal([]byte(ev.Data), &sum.Done)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "stream.pcm"), pcm.Bytes(), 0o644); err != nil {
		return err
	}

	payload, _ = json.Marshal(Chapter3Request{
		Text: "你好，这是第三章。Hello, chapter three.", Lang: "zh-CN", VoiceID: "alloy",
		Speed: 1.0, Pauses: map[string]int{"comma": 100, "period": 200},
		Extensions: map[string]any{"min_new_tokens": 48},
	})
	resp3, err := client.Post(base+"/v1/tts", "application/json", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	defer resp3.Body.Close()
	sum.Chapter3Status, sum.Chapter3Type = resp3.StatusCode, resp3.Header.Get("Content-Type")
	wav, err := io.ReadAll(resp3.Body)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "chapter3.wav"), wav, 0o644); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(sum, "", "  ")
	return os.WriteFile(filepath.Join(out, "summary.json"), js, 0o644)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: chapter1 BASE_URL OUT_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "chapter1:", err)
		os.Exit(1)
	}
}
