package chattts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"
	"testing/iotest"
)

func TestWAVHeaderExactAndStreamingSizes(t *testing.T) {
	h := WAVHeader(24000, 1000)
	le := binary.LittleEndian
	if len(h) != 44 || string(h[0:4]) != "RIFF" || le.Uint32(h[4:]) != 1036 || string(h[8:16]) != "WAVEfmt " ||
		le.Uint16(h[20:]) != 1 || le.Uint16(h[22:]) != 1 || le.Uint32(h[24:]) != 24000 || le.Uint32(h[28:]) != 48000 ||
		le.Uint16(h[32:]) != 2 || le.Uint16(h[34:]) != 16 || string(h[36:40]) != "data" || le.Uint32(h[40:]) != 1000 {
		t.Fatalf("% x", h)
	}
	s := WAVHeader(24000, -1)
	if le.Uint32(s[4:]) != WAVUnknownSize || le.Uint32(s[40:]) != WAVUnknownSize {
		t.Fatalf("% x", s)
	}
	if huge := WAVHeader(24000, 1<<32); le.Uint32(huge[40:]) != WAVUnknownSize {
		t.Fatal("a size RIFF cannot hold was written")
	}
	st := AppendWAVHeader(nil, 48000, 2, 8)
	if le.Uint16(st[22:]) != 2 || le.Uint32(st[28:]) != 192000 || le.Uint16(st[32:]) != 4 {
		t.Fatalf("% x", st)
	}
}

// chunk is a RIFF chunk with its pad byte.
func chunk(id string, body []byte) []byte {
	out := append([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	out = append(out, body...)
	if len(body)%2 == 1 {
		out = append(out, 0)
	}
	return out
}

func riff(chunks ...[]byte) []byte {
	body := []byte("WAVE")
	for _, c := range chunks {
		body = append(body, c...)
	}
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...), body...)
}

func fmtPCM(rate, channels int) []byte {
	h := AppendWAVHeader(nil, rate, channels, 0)
	return h[20:36]
}

func TestWAVReaderSkipsChunksBeforeData(t *testing.T) {
	pcm := []byte{1, 2, 3, 4, 5, 6}
	file := riff(chunk("LIST", []byte("INFOISFT\x05\x00\x00\x00lavf\x00")), chunk("fmt ", fmtPCM(22050, 1)),
		chunk("fact", []byte{1, 2, 3}), chunk("data", pcm), chunk("id3 ", []byte("trailing")))
	info, got, err := DecodeWAV(file)
	if err != nil || !bytes.Equal(got, pcm) || info.SampleRate != 22050 || info.Channels != 1 || info.BitsPerSample != 16 || info.DataBytes != 6 {
		t.Fatalf("%+v % x %v", info, got, err)
	}
	r := NewWAVReader(iotest.OneByteReader(bytes.NewReader(file)))
	info2, err := r.Info()
	if err != nil || info2 != info {
		t.Fatal(info2, err)
	}
	all, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(all, pcm) {
		t.Fatalf("% x %v", all, err)
	}
}

func TestWAVReaderOfAStreamedFileReadsToTheEnd(t *testing.T) {
	file := append(WAVHeader(24000, -1), 9, 8, 7, 6)
	r := NewWAVReader(iotest.HalfReader(bytes.NewReader(file)))
	all, err := io.ReadAll(r)
	info, _ := r.Info()
	if err != nil || !bytes.Equal(all, []byte{9, 8, 7, 6}) || info.DataBytes != -1 {
		t.Fatalf("% x %v %+v", all, err, info)
	}
}

func TestWAVExtensibleFormatAndRejections(t *testing.T) {
	ext := append(fmtPCM(48000, 2), 22, 0, 16, 0, 3, 0, 0, 0)
	ext[0] = 0xFE
	ext[1] = 0xFF
	ext = append(ext, 1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71)
	info, pcm, err := DecodeWAV(riff(chunk("fmt ", ext), chunk("data", []byte{1, 2, 3, 4})))
	if err != nil || info.Channels != 2 || len(pcm) != 4 {
		t.Fatalf("extensible PCM: %+v %v", info, err)
	}
	float := fmtPCM(24000, 1)
	float[0] = 3
	cases := map[string][]byte{
		"not riff":       []byte("RIFX\x00\x00\x00\x00WAVE"),
		"data first":     riff(chunk("data", []byte{1, 2})),
		"float":          riff(chunk("fmt ", float), chunk("data", []byte{1, 2})),
		"short fmt":      riff(chunk("fmt ", []byte{1, 0})),
		"no data":        riff(chunk("fmt ", fmtPCM(24000, 1))),
		"truncated head": []byte("RIFF\x10\x00"),
	}
	for name, file := range cases {
		if _, _, err := DecodeWAV(file); err == nil || !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v", name, err)
		}
	}
	short := riff(chunk("fmt ", fmtPCM(24000, 1)), chunk("data", []byte{1, 2, 3, 4}))
	if _, _, err := DecodeWAV(short[:len(short)-2]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut data chunk: %v", err)
	}
}

func TestWAVWriterPatchesSizesOnlyWhenSeekable(t *testing.T) {
	var plain bytes.Buffer
	w := NewWAVWriter(&plain, 16000)
	w.Write([]byte{1, 2})
	w.Close()
	if !bytes.Equal(plain.Bytes(), append(WAVHeader(16000, -1), 1, 2)) {
		t.Fatalf("% x", plain.Bytes())
	}
	var empty bytes.Buffer
	NewWAVWriter(&empty, 8000).Close()
	if _, pcm, err := DecodeWAV(empty.Bytes()); err != nil || len(pcm) != 0 {
		t.Fatal(pcm, err)
	}
}

type wavResult struct {
	Info WAVInfo
	PCM  []byte
	Err  string
}

func splitWAV(in []byte, cuts []int) wavResult {
	var d WAVDecoder
	var pcm []byte
	prev := 0
	var err error
	for _, c := range append(cuts, len(in)) {
		if c < prev || c > len(in) {
			continue
		}
		var out []byte
		out, err = d.Decode(in[prev:c])
		pcm = append(pcm, out...)
		prev = c
		if err != nil {
			break
		}
	}
	if err == nil {
		err = d.Finish()
	}
	info, _ := d.Info()
	res := wavResult{Info: info, PCM: pcm}
	if err != nil {
		res.Err = err.Error()
	}
	return res
}

func TestWAVSameResultForAnySplit(t *testing.T) {
	file := riff(chunk("LIST", []byte("abc")), chunk("fmt ", fmtPCM(24000, 1)), chunk("data", []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	want := splitWAV(file, nil)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		if got := splitWAV(file, randomCuts(r, len(file))); !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v vs %+v", got, want)
		}
	}
}

// FuzzWAVReader: arbitrary bytes (garbage, truncated and valid files) give the same
// format, PCM and error whatever the split, and never panic; and the io.Reader shell
// agrees with the incremental decoder.
func FuzzWAVReader(f *testing.F) {
	f.Add(append(WAVHeader(24000, 4), 1, 2, 3, 4), uint64(1))
	f.Add(append(WAVHeader(24000, -1), 1, 2, 3), uint64(2))
	f.Add(riff(chunk("LIST", []byte("INFO")), chunk("fmt ", fmtPCM(8000, 2)), chunk("data", []byte{9})), uint64(3))
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEfmt \x28\x00\x00\x00\xfe\xff"), uint64(4))
	f.Add([]byte("garbage"), uint64(5))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		want := splitWAV(in, nil)
		r := rand.New(rand.NewPCG(seed, ^seed))
		for i := 0; i < 4; i++ {
			if got := splitWAV(in, randomCuts(r, len(in))); !reflect.DeepEqual(got, want) {
				t.Fatalf("split changed the result: %+v vs %+v", got, want)
			}
		}
		all, err := io.ReadAll(NewWAVReader(iotest.HalfReader(bytes.NewReader(in))))
		if (err == nil) != (want.Err == "") || !bytes.Equal(all, want.PCM) {
			t.Fatalf("reader: % x %v vs %+v", all, err, want)
		}
	})
}

func TestRingBufferWrapsAround(t *testing.T) {
	b := newRing(5)
	if n := b.write([]byte("abcdefg")); n != 5 || b.free() != 0 {
		t.Fatal(n)
	}
	out := make([]byte, 3)
	if n := b.read(out); n != 3 || string(out) != "abc" {
		t.Fatal(n, string(out))
	}
	if n := b.write([]byte("XYZ")); n != 3 {
		t.Fatal(n)
	}
	all := make([]byte, 10)
	if n := b.read(all); n != 5 || string(all[:n]) != "deXYZ" {
		t.Fatal(string(all[:n]))
	}
}

func TestRingPipeBlocksTheWriterWhenFull(t *testing.T) {
	p := newRingPipe(4)
	wrote := make(chan int)
	go func() {
		n, _ := p.Write([]byte("0123456789"))
		wrote <- n
	}()
	got := make([]byte, 0, 10)
	buf := make([]byte, 3)
	for len(got) < 10 {
		n, err := p.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if p.buffered() > 4 {
			t.Fatal("the pipe held more than its size")
		}
		got = append(got, buf[:n]...)
	}
	if <-wrote != 10 || string(got) != "0123456789" {
		t.Fatal(string(got))
	}
	p.CloseWithError(io.ErrUnexpectedEOF)
	if _, err := p.Read(buf); err != io.ErrUnexpectedEOF {
		t.Fatal(err)
	}
	q := newRingPipe(2)
	done := make(chan error)
	go func() {
		_, err := q.Write([]byte("abcdef"))
		done <- err
	}()
	q.closeRead() // a blocked writer is released
	if err := <-done; err != io.ErrClosedPipe {
		t.Fatal(err)
	}
}
