package chattts

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// tenMinutes of 24 kHz 16-bit mono audio: 28.8 MB.
const tenMinutes = 10 * 60 * 24000 * 2

// wavSource produces a streamed WAV of n PCM bytes on demand, counting what was taken.
type wavSource struct {
	head     []byte
	n        int64
	produced atomic.Int64
}

func (s *wavSource) Read(p []byte) (int, error) {
	off := s.produced.Load()
	total := int64(len(s.head)) + s.n
	if off >= total {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && off < total {
		if off < int64(len(s.head)) {
			p[k] = s.head[off]
		} else {
			p[k] = byte(off * 7) // a pattern the reader checks
		}
		k++
		off++
	}
	s.produced.Store(off)
	return k, nil
}

func (s *wavSource) Close() error { return nil }

type sourceTransport struct{ src *wavSource }

func (t sourceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", "audio/wav")
	h.Set("X-Sample-Rate", "24000")
	return &http.Response{StatusCode: 200, Header: h, Body: t.src, Request: r}, nil
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// slowRead reads the stream in small pieces, checking the pattern and calling check every
// MiB; the reader is slower than the source, which only produces when the client reads.
func slowRead(t *testing.T, r io.Reader, check func(read int64)) int64 {
	t.Helper()
	buf := make([]byte, 4096)
	var read int64
	next := int64(1 << 20)
	for {
		n, err := r.Read(buf)
		for i := 0; i < n; i++ {
			off := read + int64(i)
			if off >= WAVHeaderSize && buf[i] != byte(off*7) {
				t.Fatalf("byte %d corrupted", off)
			}
		}
		read += int64(n)
		if read >= next {
			check(read)
			next += 1 << 20
		}
		if err == io.EOF {
			return read
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The stated bound: streaming ten minutes of audio (28.8 MB) through StreamAudio to a
// slow reader keeps the live heap within 2 MiB of where it started (the ring buffer is
// 256 KiB), and the client never reads more than ring + one network read (32 KiB) ahead
// of the reader.
func TestStreamAudioMemoryStaysBoundedForTenMinutesOfAudio(t *testing.T) {
	const ringSize = 256 << 10
	const heapBound = 2 << 20
	src := &wavSource{head: WAVHeader(24000, -1), n: tenMinutes}
	c, _, _ := testClient(t, []string{"http://tts.test"}, WithTransport(sourceTransport{src}), WithStreamBuffer(ringSize))
	base := liveHeap()
	as, err := c.StreamAudio(context.Background(), &TTSRequest{Text: strings.Repeat("Long text. ", 100)})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	var peak uint64
	total := slowRead(t, as, func(read int64) {
		if lead := src.produced.Load() - read; lead > ringSize+32<<10 {
			t.Fatalf("the client read %d bytes ahead of the reader", lead)
		}
		if h := liveHeap(); h > peak {
			peak = h
		}
	})
	if total != WAVHeaderSize+tenMinutes {
		t.Fatalf("read %d bytes", total)
	}
	growth := int64(peak) - int64(base)
	t.Logf("10 min of audio (%.1f MB): live heap grew by at most %d KiB (bound %d KiB)", float64(tenMinutes)/1e6, growth>>10, heapBound>>10)
	if growth > heapBound {
		t.Fatalf("the heap grew by %d bytes streaming %d bytes", growth, total)
	}
}

// The same over a real loopback connection through net/http: the heap bound holds.
func TestStreamAudioMemoryOverLoopback(t *testing.T) {
	const heapBound = 2 << 20
	srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("X-Sample-Rate", "24000")
		src := &wavSource{head: WAVHeader(24000, -1), n: tenMinutes}
		buf := make([]byte, 16<<10)
		for {
			n, err := src.Read(buf)
			if _, werr := w.Write(buf[:n]); werr != nil || err != nil {
				return
			}
		}
	})
	c, _, _ := testClient(t, []string{srv.srv.URL})
	base := liveHeap()
	as, err := c.StreamAudio(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	var peak uint64
	total := slowRead(t, as, func(int64) {
		if h := liveHeap(); h > peak {
			peak = h
		}
	})
	growth := int64(peak) - int64(base)
	t.Logf("loopback: %d bytes streamed, live heap grew by at most %d KiB", total, growth>>10)
	if total != WAVHeaderSize+tenMinutes || growth > heapBound {
		t.Fatalf("%d bytes, heap growth %d", total, growth)
	}
}
