package chattts

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

// fallbackSource is the configured fallback audio: bytes, a file or a URL, loaded once.
type fallbackSource struct {
	mu     sync.Mutex
	data   []byte
	format string
	loaded bool
	path   string
	url    string
}

var contentTypeFormats = map[string]string{
	"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/pcm": "pcm",
	"audio/l16": "pcm", "audio/mpeg": "mp3", "audio/ogg": "opus", "audio/opus": "opus",
	"audio/flac": "flac", "audio/aac": "aac",
}

var suffixFormats = map[string]string{
	".wav": "wav", ".pcm": "pcm", ".mp3": "mp3", ".ogg": "opus", ".opus": "opus",
	".flac": "flac", ".aac": "aac",
}

// formatOf: the audio format named by a content type, else by a file name's suffix.
func formatOf(contentType, name string) string {
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		if f, ok := contentTypeFormats[strings.ToLower(mt)]; ok {
			return f
		}
	}
	if f, ok := suffixFormats[strings.ToLower(path.Ext(name))]; ok {
		return f
	}
	return "wav"
}

// fallbackFetchTimeout bounds fetching a fallback URL; the fetch is detached from the
// failed call's context (whose deadline may be what failed).
const fallbackFetchTimeout = 10 * time.Second

// LoadFallback loads the configured fallback audio now (reads the file, fetches the URL),
// so that it is at hand when the server is not; calls load it lazily otherwise. A no-op
// without fallback audio.
func (c *Client) LoadFallback(ctx context.Context) error {
	_, err := c.fallbackAudio(ctx)
	return err
}

func (c *Client) fallbackAudio(ctx context.Context) (*Audio, error) {
	f := c.fallback
	if f == nil {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.loaded {
		var err error
		switch {
		case f.path != "":
			f.data, err = os.ReadFile(f.path)
			f.format = formatOf("", f.path)
		case f.url != "":
			f.data, f.format, err = c.fetchFallback(ctx, f.url)
		}
		if err != nil {
			return nil, fmt.Errorf("chattts: loading the fallback audio: %w", err)
		}
		f.loaded = true
	}
	a := &Audio{Data: f.data, Format: f.format, Fallback: true}
	if f.format == "wav" {
		if info, _, err := DecodeWAV(f.data); err == nil {
			a.SampleRate = info.SampleRate
			a.DurationMS = info.DurationMS(int64(len(f.data) - WAVHeaderSize))
		}
	}
	return a, nil
}

func (c *Client) fetchFallback(ctx context.Context, url string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fallbackFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("User-Agent", "chattts-go/"+Version)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET fallback: HTTP %d", resp.StatusCode)
	}
	tooLarge := &ResponseTooLargeError{Op: "GET fallback", Endpoint: req.URL.Redacted(), Limit: c.maxAudio,
		ContentLength: resp.ContentLength}
	if resp.ContentLength > c.maxAudio {
		return nil, "", tooLarge
	}
	data, err := readLimited(resp.Body, resp.ContentLength, c.maxAudio)
	if errors.Is(err, errTooLarge) {
		return nil, "", tooLarge
	}
	return data, formatOf(resp.Header.Get("Content-Type"), req.URL.Path), err
}

// FallbackFor answers err with the fallback audio when one is configured and err is the
// server's trouble (5xx, 429, connection errors, timeouts, open circuits — not 4xx input
// errors nor a cancelled context): (audio, *FallbackError). Otherwise (nil, err); a
// fallback that cannot be loaded leaves err as it is, with the load failure joined.
// Synthesize, Speech and StreamAudio do this themselves; a caller of Stream whose stream
// failed before any audio can use it to play the prompt.
func (c *Client) FallbackFor(ctx context.Context, err error) (*Audio, error) {
	if c.fallback == nil || !serverFault(err) {
		return nil, err
	}
	a, lerr := c.fallbackAudio(ctx)
	if lerr != nil {
		return nil, errors.Join(err, lerr)
	}
	return a, &FallbackError{Err: err}
}
