package chattts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"runtime"
	"testing"
)

// patternBody is n bytes of answer, made as they are read.
type patternBody struct{ left int64 }

func (b *patternBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), b.left))
	for i := range p[:k] {
		p[i] = 'x'
	}
	b.left -= int64(k)
	return k, nil
}

func (b *patternBody) Close() error { return nil }

// sizedTransport answers every request 200 with contentType, n body bytes and the given
// Content-Length header (-1: none).
type sizedTransport struct {
	contentType   string
	n             int64
	contentLength int64
}

func (t sizedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", t.contentType)
	return &http.Response{StatusCode: 200, Header: h, Body: &patternBody{left: t.n}, ContentLength: t.contentLength, Request: r}, nil
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// A Content-Length beyond the bound fails at once, without allocating what it claims.
func TestAHugeContentLengthIsRefusedWithoutAllocatingIt(t *testing.T) {
	tr := sizedTransport{contentType: "audio/wav", n: 100, contentLength: 1 << 30}
	c, _, sink := testClient(t, []string{"http://tts.test"}, WithTransport(tr), WithRetries(0))
	before := totalAlloc()
	audio, err := c.Synthesize(context.Background(), hello())
	if grew := totalAlloc() - before; grew > 8<<20 {
		t.Fatalf("a claimed Content-Length made the client allocate %d bytes", grew)
	}
	var tl *ResponseTooLargeError
	if audio != nil || !errors.Is(err, ErrResponseTooLarge) || !errors.As(err, &tl) || tl.Limit != DefaultMaxAudioBytes ||
		tl.ContentLength != 1<<30 || tl.RequestID == "" {
		t.Fatalf("got %v, %v", audio, err)
	}
	if rec := sink.Records()[0]; rec.Attrs["outcome"] != "error" {
		t.Fatalf("record %+v", rec.Attrs)
	}
}

// Without a Content-Length the bound still holds: the default ones for audio and JSON,
// and those set with WithMaxResponseBytes; an answer of exactly the bound is fine.
func TestWholeAnswersAreBounded(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		ct    string
		n     int64
		limit int64
		opts  []Option
		call  func(c *Client) error
	}{
		{"default audio", "audio/wav", DefaultMaxAudioBytes + 1, DefaultMaxAudioBytes, nil,
			func(c *Client) error { _, err := c.Synthesize(ctx, hello()); return err }},
		{"default json", "application/json", DefaultMaxJSONBytes + 1, DefaultMaxJSONBytes, nil,
			func(c *Client) error { _, err := c.Voices.List(ctx); return err }},
		{"set audio", "audio/mpeg", 4097, 4096, []Option{WithMaxResponseBytes(4096, 1024)},
			func(c *Client) error {
				_, err := c.Speech(ctx, &SpeechRequest{Input: "Hi.", Voice: "alloy"})
				return err
			}},
		{"set json", "application/json", 1025, 1024, []Option{WithMaxResponseBytes(4096, 1024)},
			func(c *Client) error { _, err := c.Voices.Export(ctx); return err }},
		{"set sample", "audio/wav", 4097, 4096, []Option{WithMaxResponseBytes(4096, 1024)},
			func(c *Client) error { _, err := c.Voices.Sample(ctx, "narrator", SampleOptions{}); return err }},
		{"set health", "application/json", 1025, 1024, []Option{WithMaxResponseBytes(4096, 1024)},
			func(c *Client) error { _, err := c.Health(ctx); return err }},
	} {
		tr := sizedTransport{contentType: tc.ct, n: tc.n, contentLength: -1}
		c, _, _ := testClient(t, []string{"http://tts.test"}, append(tc.opts, WithTransport(tr))...)
		err := tc.call(c)
		var tl *ResponseTooLargeError
		if !errors.Is(err, ErrResponseTooLarge) || !errors.As(err, &tl) || tl.Limit != tc.limit || tl.ContentLength != -1 {
			t.Fatalf("%s: %v", tc.name, err)
		}
		mustContain(t, err.Error(), "request_id=")
	}
	// exactly the bound is an answer
	c, _, _ := testClient(t, []string{"http://tts.test"}, WithMaxResponseBytes(4096, 1024),
		WithTransport(sizedTransport{contentType: "audio/mpeg", n: 4096, contentLength: -1}))
	audio, err := c.Speech(ctx, &SpeechRequest{Input: "Hi.", Voice: "alloy"})
	if err != nil || !bytes.Equal(audio.Data, bytes.Repeat([]byte("x"), 4096)) {
		t.Fatal(err)
	}
	c, _, _ = testClient(t, []string{"http://tts.test"}, WithMaxResponseBytes(4096, 1024),
		WithTransport(sizedTransport{contentType: "audio/mpeg", n: 4096, contentLength: 4096}))
	if audio, err = c.Speech(ctx, &SpeechRequest{Input: "Hi.", Voice: "alloy"}); err != nil || len(audio.Data) != 4096 {
		t.Fatal(err)
	}
	for _, bad := range [][2]int64{{0, 1}, {1, 0}, {-1, 1}} {
		if _, err := New("http://localhost:9700", WithMaxResponseBytes(bad[0], bad[1])); err == nil {
			t.Errorf("WithMaxResponseBytes(%d, %d) accepted", bad[0], bad[1])
		}
	}
}

// readLimited grows its buffer as bytes arrive: from a small start, never past the bound
// (plus the one byte that tells an answer over it), whatever Content-Length claims.
func TestReadLimitedGrowsWithTheBytes(t *testing.T) {
	for _, tc := range []struct{ n, contentLength, limit int64 }{
		{0, 0, 10}, {0, -1, 10}, {5, -1, 10}, {10, 10, 10}, {10, -1, 10}, {1 << 20, -1, 1 << 20},
		{1 << 20, 1 << 20, 1 << 20}, {3 << 20, 1 << 30, 4 << 20}, {100, 1 << 20, 1 << 20},
	} {
		data, err := readLimited(&patternBody{left: tc.n}, tc.contentLength, tc.limit)
		if err != nil || int64(len(data)) != tc.n || int64(cap(data)) > tc.limit+1 {
			t.Fatalf("%+v: %d bytes (cap %d), %v", tc, len(data), cap(data), err)
		}
		if tc.n < 1000 && cap(data) > 64<<10 {
			t.Fatalf("%+v: %d bytes pre-allocated for %d", tc, cap(data), tc.n)
		}
	}
	if _, err := readLimited(&patternBody{left: 11}, -1, 10); !errors.Is(err, errTooLarge) {
		t.Fatal(err)
	}
	if data, err := readLimited(&patternBody{left: 100}, -1, math.MaxInt64); err != nil || len(data) != 100 {
		t.Fatal(len(data), err) // no overflow at the largest bound
	}
}
