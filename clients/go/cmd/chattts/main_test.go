package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	chattts "github.com/chattts-server/chattts-server/clients/go"
)

// fake is a scripted server: answer decides each response; requests are recorded.
type fake struct {
	mu     sync.Mutex
	bodies []map[string]any
	paths  []string
	auth   []string
	srv    *httptest.Server
}

func newFake(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, body map[string]any)) *fake {
	f := &fake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.bodies = append(f.bodies, body)
		f.paths = append(f.paths, r.Method+" "+r.URL.Path)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID"))
		answer(w, r, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func tts(pcm []byte) func(w http.ResponseWriter, r *http.Request, body map[string]any) {
	return func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		if r.Header.Get("Accept") == "text/event-stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: audio\ndata: {\"seq\":0,\"sample_rate\":24000,\"format\":\"pcm_s16le\",\"audio\":%q}\n\n", base64.StdEncoding.EncodeToString(pcm))
			io.WriteString(w, "event: progress\ndata: {\"sentences_done\":1,\"sentences_total\":1,\"audio_ms\":1}\n\n")
			io.WriteString(w, "event: done\ndata: {\"request_id\":\"r\",\"audio_duration_ms\":1,\"elapsed_ms\":2,\"time_to_first_audio_ms\":1,\"finish_reason\":\"stop\"}\n\n")
			return
		}
		w.Header().Set("Content-Type", "audio/wav")
		w.Write(chattts.WAVHeader(24000, int64(len(pcm))))
		w.Write(pcm)
	}
}

func failing(status int, code string) func(w http.ResponseWriter, r *http.Request, body map[string]any) {
	return func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"scripted","type":"t","param":"voice","code":%q,"request_id":%q}}`, code, r.Header.Get("X-Request-ID"))
	}
}

func cli(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestSayWritesTheFileWithFlagsAfterTheText(t *testing.T) {
	pcm := []byte{1, 0, 2, 0}
	f := newFake(t, tts(pcm))
	path := filepath.Join(t.TempDir(), "out.wav")
	code, _, stderr := cli(t, map[string]string{"CHATTTS_SERVER_URL": f.srv.URL}, "",
		"say", "Hello.", "-o", path, "--voice", "alloy", "--manual-seed", "7", "--lang", "en-US", "--speed", "1.25")
	if code != 0 {
		t.Fatal(stderr)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, append(chattts.WAVHeader(24000, 4), pcm...)) {
		t.Fatalf("% x", data)
	}
	b := f.bodies[0]
	if b["text"] != "Hello." || b["voice"] != "alloy" || b["manual_seed"] != 7.0 || b["lang"] != "en-US" || b["speed"] != 1.25 {
		t.Fatalf("%v", b)
	}
}

func TestSayStreamsFromStdinWithProgress(t *testing.T) {
	f := newFake(t, tts([]byte{5, 0, 6, 0}))
	path := filepath.Join(t.TempDir(), "out.wav")
	code, _, stderr := cli(t, nil, "Read from stdin.", "say", "-", "--stream", "--url", f.srv.URL, "-o", path, "--seed", "3")
	if code != 0 {
		t.Fatal(stderr)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, append(chattts.WAVHeader(24000, 4), 5, 0, 6, 0)) {
		t.Fatalf("% x", data)
	}
	mustContain(t, stderr, "1/1 sentences")
	mustContain(t, stderr, "done:")
	if f.bodies[0]["text"] != "Read from stdin." || f.bodies[0]["seed"] != 3.0 || f.bodies[0]["stream"] != true {
		t.Fatalf("%v", f.bodies[0])
	}
}

func TestSayFailsWithTheServersCodeAndRequestID(t *testing.T) {
	f := newFake(t, failing(404, "voice_not_found"))
	path := filepath.Join(t.TempDir(), "out.wav")
	code, _, stderr := cli(t, nil, "", "say", "Hi.", "-o", path, "--url", f.srv.URL, "--voice", "nobody")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	mustContain(t, stderr, "status=404")
	mustContain(t, stderr, "code=voice_not_found")
	mustContain(t, stderr, "request_id=")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a failed call left its output file")
	}
	if len(f.bodies) != 1 {
		t.Fatal("a 404 was retried")
	}
}

func TestSayWritesTheFallbackWithAWarning(t *testing.T) {
	for _, stream := range []bool{false, true} {
		f := newFake(t, failing(503, "overloaded"))
		dir := t.TempDir()
		sorry := append(chattts.WAVHeader(24000, 2), 9, 9)
		os.WriteFile(filepath.Join(dir, "sorry.wav"), sorry, 0o644)
		args := []string{"say", "Hi.", "-o", filepath.Join(dir, "out.wav"), "--url", f.srv.URL,
			"--fallback", filepath.Join(dir, "sorry.wav"), "--retries", "1"}
		if stream {
			args = append(args, "--stream")
		}
		code, _, stderr := cli(t, nil, "", args...)
		if code != 0 {
			t.Fatalf("stream=%v: exit %d: %s", stream, code, stderr)
		}
		mustContain(t, stderr, "warning: the server could not answer")
		mustContain(t, stderr, "code=overloaded")
		data, _ := os.ReadFile(filepath.Join(dir, "out.wav"))
		if !bytes.Equal(data, sorry) || len(f.bodies) != 2 {
			t.Fatalf("stream=%v: % x after %d requests", stream, data, len(f.bodies))
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{}, {"sing"}, {"say"}, {"say", "a", "b", "-o", "x"}, {"say", "hi"}, {"say", "hi", "-o", "x", "--seed", "x"},
		{"say", "", "-o", "x"}, {"say", "hi", "-o", "x", "--lang", "ja"}, {"voices"}, {"voices", "rename"},
		{"voices", "create", "n"}, {"voices", "create", "n", "--seed", "1", "--spk-emb", "s"},
		{"say", "hi", "-o", "x", "--timeout", "soon"}, {"say", "hi", "-o", "x", "--bogus"},
	} {
		code, _, stderr := cli(t, nil, "", args...)
		if code != 2 || !strings.HasPrefix(stderr, "error: ") {
			t.Errorf("%q: exit %d, %q", args, code, stderr)
		}
	}
	if code, out, _ := cli(t, nil, "", "--help"); code != 0 || !strings.Contains(out, "usage:") {
		t.Fatal(code, out)
	}
}

func TestVoicesCommands(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, body map[string]any) {
		switch r.Method {
		case "GET":
			io.WriteString(w, `{"object":"list","data":[{"id":"alloy","kind":"builtin","seed":1001,"description":"OpenAI voice name"},{"id":"narrator","kind":"seed","seed":42,"language":"en"}]}`)
		case "POST":
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"id":%q,"kind":"ref_audio"}`, body["name"])
		case "DELETE":
			if strings.HasSuffix(r.URL.Path, "/ghost") {
				failing(404, "voice_not_found")(w, r, body)
				return
			}
			w.WriteHeader(204)
		}
	})
	env := map[string]string{"CHATTTS_SERVER_URL": f.srv.URL, "CHATTTS_SERVER_API_KEY": "sk-env"}
	code, out, stderr := cli(t, env, "", "voices", "list")
	if code != 0 || !strings.Contains(out, "narrator  seed     42    en") || !strings.Contains(out, "alloy") || f.auth[0] != "Bearer sk-env" {
		t.Fatalf("%d %q %q", code, out, stderr)
	}
	code, out, _ = cli(t, env, "", "voices", "list", "--json")
	var list []chattts.Voice
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
		t.Fatal(code, out)
	}
	clip := filepath.Join(t.TempDir(), "me.wav")
	os.WriteFile(clip, []byte("RIFFclip"), 0o644)
	code, out, stderr = cli(t, env, "", "voices", "create", "me", "--ref-audio", clip, "--ref-text", "Hello.", "--language", "en")
	if code != 0 || out != "created me (ref_audio)\n" {
		t.Fatal(code, out, stderr)
	}
	b := f.bodies[2]
	if b["ref_audio"] != base64.StdEncoding.EncodeToString([]byte("RIFFclip")) || b["ref_text"] != "Hello." || b["language"] != "en" {
		t.Fatalf("%v", b)
	}
	if code, out, _ = cli(t, env, "", "voices", "delete", "me"); code != 0 || out != "deleted me\n" {
		t.Fatal(code, out)
	}
	code, _, stderr = cli(t, env, "", "voices", "delete", "ghost")
	if code != 1 || !strings.Contains(stderr, "code=voice_not_found") {
		t.Fatal(code, stderr)
	}
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}
