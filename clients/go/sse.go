package chattts

import (
	"bytes"
	"fmt"
)

// DefaultMaxEventBytes bounds one SSE event (its data and any unfinished line) in
// SSEDecoder; an audio event of this server is well under 1 MiB.
const DefaultMaxEventBytes = 8 << 20

// SSEEvent is one dispatched Server-Sent Event.
type SSEEvent struct {
	Event string // the event: name, "message" when none was given
	Data  string // the data: lines joined with "\n"
	ID    string // the last event id seen on the stream so far
	Retry int    // the latest retry: field in ms, 0 when none was given
}

// SSEDecoder is an incremental decoder of the WHATWG event-stream format, free of I/O: feed
// it bytes as they arrive, in pieces of any size, and it returns the events they complete.
// The result does not depend on how the stream is split.
//
// Lines may end in \n, \r\n or \r (also split between pieces); a leading UTF-8 BOM is
// dropped; comment lines (": keep-alive") are skipped; an event is dispatched at the blank
// line that ends it, and only if it has data. An unfinished event at the end of the stream
// is not an event: Pending tells whether one was left.
type SSEDecoder struct {
	// MaxEventBytes bounds the memory one event (or line) may take; 0 means
	// DefaultMaxEventBytes. Beyond it Append fails with ErrProtocol.
	MaxEventBytes int

	line      []byte // an unfinished line carried over from the last piece
	afterCR   bool   // the last piece ended in \r: a \n starting the next belongs to it
	started   bool   // the optional BOM has been dealt with
	name      string
	data      []byte
	hasData   bool
	hasFields bool
	lastID    string
	retry     int
	err       error
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// Append decodes p and appends the events it completed to dst. After an error (an event
// over MaxEventBytes) the decoder stays failed.
func (d *SSEDecoder) Append(dst []SSEEvent, p []byte) ([]SSEEvent, error) {
	if d.err != nil {
		return dst, d.err
	}
	if d.afterCR && len(p) > 0 {
		if p[0] == '\n' {
			p = p[1:]
		}
		d.afterCR = false
	}
	if !d.started {
		if len(d.line)+len(p) < len(bom) && bytes.HasPrefix(bom, append(d.line[:len(d.line):len(d.line)], p...)) {
			d.line = append(d.line, p...)
			return dst, nil
		}
		d.started = true
		if len(d.line) > 0 { // the first bytes were held back: decide on them with p
			held := append(d.line, p...)
			d.line = nil
			p = bytes.TrimPrefix(held, bom)
		} else {
			p = bytes.TrimPrefix(p, bom)
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := len(p)
		if i >= 0 {
			end = i
		}
		if j := bytes.IndexByte(p[:end], '\r'); j >= 0 {
			i, end = j, j
		}
		if i < 0 { // no line end: keep the rest for the next piece
			if len(d.line)+len(p)+len(d.data) > d.max() {
				return dst, d.fail()
			}
			d.line = append(d.line, p...)
			return dst, nil
		}
		lineEnd := i + 1
		if p[i] == '\r' {
			if i+1 < len(p) {
				if p[i+1] == '\n' {
					lineEnd++
				}
			} else {
				d.afterCR = true
			}
		}
		line := p[:end]
		if len(d.line) > 0 {
			d.line = append(d.line, line...)
			line = d.line
		}
		var ok bool
		dst, ok = d.field(dst, line)
		d.line = d.line[:0]
		if !ok {
			return dst, d.fail()
		}
		p = p[lineEnd:]
	}
	return dst, nil
}

// Pending reports whether bytes of an unfinished event are buffered.
func (d *SSEDecoder) Pending() bool {
	return len(d.line) > 0 || d.hasFields
}

func (d *SSEDecoder) max() int {
	if d.MaxEventBytes > 0 {
		return d.MaxEventBytes
	}
	return DefaultMaxEventBytes
}

func (d *SSEDecoder) fail() error {
	d.err = &ProtocolError{Msg: fmt.Sprintf("an SSE event exceeds %d bytes", d.max())}
	d.line, d.data = nil, nil
	return d.err
}

// field handles one complete line; false when the event grew too large.
func (d *SSEDecoder) field(dst []SSEEvent, line []byte) ([]SSEEvent, bool) {
	if len(line) == 0 {
		if d.hasData {
			dst = append(dst, SSEEvent{Event: d.eventName(), Data: string(d.data), ID: d.lastID, Retry: d.retry})
		}
		d.name, d.data, d.hasData, d.hasFields = "", d.data[:0], false, false
		return dst, true
	}
	if line[0] == ':' {
		return dst, true
	}
	name, value, found := bytes.Cut(line, []byte{':'})
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	d.hasFields = true
	switch string(name) {
	case "event":
		d.name = string(value)
	case "data":
		if d.hasData {
			d.data = append(d.data, '\n')
		}
		if len(d.data)+len(value) > d.max() {
			return dst, false
		}
		d.data = append(d.data, value...)
		d.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			d.lastID = string(value)
		}
	case "retry":
		if n, ok := digits(value); ok {
			d.retry = n
		}
	}
	return dst, true
}

func (d *SSEDecoder) eventName() string {
	if d.name == "" {
		return "message"
	}
	return d.name
}

func digits(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
