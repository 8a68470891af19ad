package chattts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	// WAVHeaderSize is the size of the header WAVHeader writes.
	WAVHeaderSize = 44
	// WAVUnknownSize is the RIFF and data size of a header written before the length is
	// known (a streamed WAV); players read such a file to its end.
	WAVUnknownSize = 0xFFFFFFFF
)

// AppendWAVHeader appends the 44-byte header of a 16-bit little-endian PCM WAV file with
// channels interleaved channels at sampleRate, holding dataBytes bytes of samples.
// dataBytes < 0 (length unknown), or too large for RIFF, writes WAVUnknownSize for both
// sizes: the streaming header.
func AppendWAVHeader(dst []byte, sampleRate, channels int, dataBytes int64) []byte {
	riff, data := uint32(WAVUnknownSize), uint32(WAVUnknownSize)
	if dataBytes >= 0 && dataBytes+WAVHeaderSize-8 < WAVUnknownSize {
		riff, data = uint32(dataBytes+WAVHeaderSize-8), uint32(dataBytes)
	}
	le := binary.LittleEndian
	dst = append(dst, "RIFF"...)
	dst = le.AppendUint32(dst, riff)
	dst = append(dst, "WAVEfmt "...)
	dst = le.AppendUint32(dst, 16)
	dst = le.AppendUint16(dst, 1) // PCM
	dst = le.AppendUint16(dst, uint16(channels))
	dst = le.AppendUint32(dst, uint32(sampleRate))
	dst = le.AppendUint32(dst, uint32(sampleRate*channels*2))
	dst = le.AppendUint16(dst, uint16(channels*2))
	dst = le.AppendUint16(dst, 16)
	dst = append(dst, "data"...)
	return le.AppendUint32(dst, data)
}

// WAVHeader is AppendWAVHeader for mono audio (what the server sends).
func WAVHeader(sampleRate int, dataBytes int64) []byte {
	return AppendWAVHeader(make([]byte, 0, WAVHeaderSize), sampleRate, 1, dataBytes)
}

// WAVWriter writes a mono 16-bit WAV file as PCM arrives, holding none of it: the header
// goes first with unknown sizes, and Close patches in the exact sizes when the target is
// an io.WriteSeeker (a file).
type WAVWriter struct {
	w          io.Writer
	sampleRate int
	start      int64 // offset of the header when w is seekable, else -1
	started    bool
	n          int64
}

// NewWAVWriter writes to w at sampleRate (the header is written by the first Write, or by
// Close for a stream without audio).
func NewWAVWriter(w io.Writer, sampleRate int) *WAVWriter {
	return &WAVWriter{w: w, sampleRate: sampleRate, start: -1}
}

// Write appends PCM samples (s16le).
func (w *WAVWriter) Write(pcm []byte) (int, error) {
	if err := w.header(); err != nil {
		return 0, err
	}
	n, err := w.w.Write(pcm)
	w.n += int64(n)
	return n, err
}

// DataBytes is how many PCM bytes were written.
func (w *WAVWriter) DataBytes() int64 { return w.n }

func (w *WAVWriter) header() error {
	if w.started {
		return nil
	}
	w.started = true
	if s, ok := w.w.(io.Seeker); ok {
		if off, err := s.Seek(0, io.SeekCurrent); err == nil {
			w.start = off
		}
	}
	_, err := w.w.Write(WAVHeader(w.sampleRate, -1))
	return err
}

// Close finishes the file: on a seekable target the header gets the exact sizes (when the
// audio fits a RIFF file). It does not close the underlying writer.
func (w *WAVWriter) Close() error {
	if err := w.header(); err != nil {
		return err
	}
	s, ok := w.w.(io.WriteSeeker)
	if !ok || w.start < 0 || w.n+WAVHeaderSize-8 >= WAVUnknownSize {
		return nil
	}
	end, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := s.Seek(w.start, io.SeekStart); err != nil {
		return err
	}
	if _, err := s.Write(WAVHeader(w.sampleRate, w.n)); err != nil {
		return err
	}
	_, err = s.Seek(end, io.SeekStart)
	return err
}

// WAVInfo is what a WAV header says.
type WAVInfo struct {
	SampleRate    int
	Channels      int
	BitsPerSample int
	// DataBytes is the size the data chunk declares, -1 for a streamed file
	// (WAVUnknownSize): read to the end.
	DataBytes int64
}

// Duration in milliseconds of n bytes of this format's samples.
func (i WAVInfo) DurationMS(n int64) int64 {
	frame := int64(i.Channels * i.BitsPerSample / 8)
	if frame == 0 || i.SampleRate == 0 {
		return 0
	}
	return n / frame * 1000 / int64(i.SampleRate)
}

// maxFmtBytes: a fmt chunk is 16, 18 or 40 bytes; longer ones are read this far and the
// rest skipped.
const maxFmtBytes = 64

type wavState uint8

const (
	wavRIFF        wavState = iota // the 12-byte RIFF/WAVE preamble
	wavChunkHeader                 // 8 bytes: id and size
	wavFmt                         // the fmt chunk's body
	wavSkip                        // skipping a chunk (and its pad byte)
	wavData                        // in the data chunk
	wavDone                        // the data chunk was read to its declared size
)

// WAVDecoder is an incremental, I/O-free WAV parser: give it the file in pieces of any
// size and it hands back the PCM bytes of the data chunk, skipping the chunks before it
// (LIST, fact, ...) and anything after it. The result does not depend on the split.
// It accepts PCM (format 1) and WAVE_FORMAT_EXTENSIBLE PCM.
type WAVDecoder struct {
	state    wavState
	hdr      [maxFmtBytes]byte
	have     int   // bytes of hdr filled
	need     int   // bytes of hdr wanted
	skip     int64 // bytes left to skip (wavSkip), or of a fmt body beyond maxFmtBytes
	fmtSize  int64 // the fmt chunk's declared size
	left     int64 // data bytes left, -1 when unknown
	info     WAVInfo
	haveFmt  bool
	dataSeen int64
	err      error
}

// Decode consumes p and returns the PCM it holds: a sub-slice of p (the data chunk's
// bytes in it are always contiguous). After a malformed header it returns the same error
// for every call.
func (d *WAVDecoder) Decode(p []byte) ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if d.state == wavRIFF && d.need == 0 {
		d.need = 12
	}
	for len(p) > 0 {
		switch d.state {
		case wavRIFF, wavChunkHeader, wavFmt:
			n := copy(d.hdr[d.have:d.need], p)
			d.have += n
			p = p[n:]
			if d.have < d.need {
				return nil, nil
			}
			if err := d.header(); err != nil {
				d.err = err
				return nil, err
			}
		case wavSkip:
			n := int64(len(p))
			if n > d.skip {
				n = d.skip
			}
			d.skip -= n
			p = p[n:]
			if d.skip == 0 {
				d.next()
			}
		case wavData:
			n := int64(len(p))
			if d.left >= 0 && n > d.left {
				n = d.left
			}
			out := p[:n]
			d.dataSeen += n
			if d.left >= 0 {
				d.left -= n
				if d.left == 0 {
					d.state = wavDone
				}
			}
			return out, nil
		case wavDone:
			return nil, nil
		}
	}
	return nil, nil
}

// next expects a chunk header.
func (d *WAVDecoder) next() {
	d.state, d.have, d.need = wavChunkHeader, 0, 8
}

func (d *WAVDecoder) header() error {
	le := binary.LittleEndian
	switch d.state {
	case wavRIFF:
		if string(d.hdr[0:4]) != "RIFF" || string(d.hdr[8:12]) != "WAVE" {
			return &ProtocolError{Msg: "not a WAV file (no RIFF/WAVE header)"}
		}
		d.next()
	case wavChunkHeader:
		id, size := string(d.hdr[0:4]), int64(le.Uint32(d.hdr[4:8]))
		switch id {
		case "fmt ":
			if size < 16 {
				return &ProtocolError{Msg: fmt.Sprintf("WAV fmt chunk of %d bytes", size)}
			}
			d.fmtSize = size
			d.state, d.have, d.need = wavFmt, 0, int(min(size, maxFmtBytes))
		case "data":
			if !d.haveFmt {
				return &ProtocolError{Msg: "WAV data chunk before its fmt chunk"}
			}
			d.state, d.left, d.info.DataBytes = wavData, size, size
			if size == WAVUnknownSize {
				d.left, d.info.DataBytes = -1, -1
			}
			if size == 0 {
				d.state = wavDone
			}
		default:
			d.state, d.skip = wavSkip, size+size&1
			if d.skip == 0 {
				d.next()
			}
		}
	case wavFmt:
		format := le.Uint16(d.hdr[0:2])
		if format == 0xFFFE && d.need >= 26 {
			format = le.Uint16(d.hdr[24:26]) // the extensible format's sub-format GUID
		}
		d.info = WAVInfo{
			Channels:      int(le.Uint16(d.hdr[2:4])),
			SampleRate:    int(le.Uint32(d.hdr[4:8])),
			BitsPerSample: int(le.Uint16(d.hdr[14:16])),
		}
		if format != 1 {
			return &ProtocolError{Msg: fmt.Sprintf("WAV format %#x is not PCM", format)}
		}
		if d.info.Channels == 0 || d.info.SampleRate == 0 || d.info.BitsPerSample == 0 || d.info.BitsPerSample%8 != 0 {
			return &ProtocolError{Msg: fmt.Sprintf("WAV fmt: %d channels, %d Hz, %d bits", d.info.Channels, d.info.SampleRate, d.info.BitsPerSample)}
		}
		d.haveFmt = true
		rest := d.fmtSize - int64(d.need) + d.fmtSize&1
		if rest > 0 {
			d.state, d.skip = wavSkip, rest
		} else {
			d.next()
		}
	}
	return nil
}

// Info is the header's format once the data chunk has been reached (ok false before).
func (d *WAVDecoder) Info() (WAVInfo, bool) {
	return d.info, d.state == wavData || d.state == wavDone
}

// Finish is called at the end of the input: an error if the header was incomplete or the
// data chunk shorter than it declared (io.ErrUnexpectedEOF).
func (d *WAVDecoder) Finish() error {
	if d.err != nil {
		return d.err
	}
	switch d.state {
	case wavData:
		if d.left > 0 {
			return fmt.Errorf("chattts: WAV data chunk declares %d bytes, %d arrived: %w", d.info.DataBytes, d.dataSeen, io.ErrUnexpectedEOF)
		}
		return nil
	case wavDone:
		return nil
	}
	return &ProtocolError{Msg: "WAV file ended before its data chunk"}
}

// WAVReader reads the PCM samples of a WAV stream: the header is parsed (extra chunks
// skipped) by the first Read, or by Info.
type WAVReader struct {
	r   io.Reader
	dec WAVDecoder
	buf []byte // pending PCM, a slice of scratch
	err error
}

// NewWAVReader reads the WAV file in r.
func NewWAVReader(r io.Reader) *WAVReader { return &WAVReader{r: r} }

// Info reads as far as the data chunk and returns the format.
func (w *WAVReader) Info() (WAVInfo, error) {
	for {
		if info, ok := w.dec.Info(); ok {
			return info, nil
		}
		if w.err != nil {
			return WAVInfo{}, w.err
		}
		w.fill(make([]byte, 4096))
	}
}

// fill reads once into scratch and keeps its PCM pending.
func (w *WAVReader) fill(scratch []byte) {
	n, err := w.r.Read(scratch)
	pcm, derr := w.dec.Decode(scratch[:n])
	w.buf = pcm
	w.settle(err, derr)
}

// settle keeps what ended the input after a read: the decoder's error, else at the end of
// the input the decoder's verdict on it (io.EOF when the file was whole), else the read's
// error.
func (w *WAVReader) settle(readErr, decodeErr error) {
	switch {
	case decodeErr != nil:
		w.err = decodeErr
	case errors.Is(readErr, io.EOF):
		if ferr := w.dec.Finish(); ferr != nil {
			w.err = ferr
		} else {
			w.err = io.EOF
		}
	case readErr != nil:
		w.err = readErr
	}
}

// Read reads PCM bytes.
func (w *WAVReader) Read(p []byte) (int, error) {
	for {
		if len(w.buf) > 0 {
			n := copy(p, w.buf)
			w.buf = w.buf[n:]
			return n, nil
		}
		if w.err == nil && w.dec.state == wavDone {
			w.err = io.EOF
		}
		if w.err != nil {
			return 0, w.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		n, err := w.r.Read(p)
		pcm, derr := w.dec.Decode(p[:n])
		m := copy(p, pcm) // pcm is a later part of p: shift it to the front
		w.settle(err, derr)
		if m > 0 {
			return m, nil
		}
	}
}

// DecodeWAV returns the format and the PCM bytes of a whole WAV file.
func DecodeWAV(file []byte) (WAVInfo, []byte, error) {
	var d WAVDecoder
	pcm, err := d.Decode(file)
	if err == nil {
		err = d.Finish()
	}
	info, _ := d.Info()
	return info, pcm, err
}
