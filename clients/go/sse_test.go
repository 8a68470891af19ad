package chattts

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func decodeAll(t testing.TB, pieces ...[]byte) ([]SSEEvent, *SSEDecoder) {
	t.Helper()
	var d SSEDecoder
	var out []SSEEvent
	for _, p := range pieces {
		var err error
		if out, err = d.Append(out, p); err != nil {
			t.Fatal(err)
		}
	}
	return out, &d
}

func TestSSENamedEventsMultilineDataAndDefaults(t *testing.T) {
	evs, _ := decodeAll(t, []byte("event: audio\ndata: a\ndata: b\n\ndata: plain\n\n"))
	want := []SSEEvent{{Event: "audio", Data: "a\nb"}, {Event: "message", Data: "plain"}}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("%+v", evs)
	}
}

func TestSSEEveryLineEnding(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		in := strings.ReplaceAll("event: x\ndata: 1\n\ndata: 2\n\n", "\n", eol)
		evs, _ := decodeAll(t, []byte(in))
		want := []SSEEvent{{Event: "x", Data: "1"}, {Event: "message", Data: "2"}}
		if !reflect.DeepEqual(evs, want) {
			t.Fatalf("%q: %+v", eol, evs)
		}
	}
}

func TestSSECommentsKeepalivesAndEmptyEventsAreSkipped(t *testing.T) {
	evs, _ := decodeAll(t, []byte(": keep-alive\n\nevent: nodata\n\n:x\ndata: y\n\n"))
	if len(evs) != 1 || evs[0].Data != "y" || evs[0].Event != "message" {
		t.Fatalf("%+v", evs)
	}
}

func TestSSEFieldParsingRules(t *testing.T) {
	in := "data:no-space\ndata:  two-spaces\ndata\nid: 7\nretry: 1500\nretry: x\nunknown: z\n\n" +
		"id: bad\x00id\ndata: after\n\n"
	evs, _ := decodeAll(t, []byte(in))
	want := []SSEEvent{
		{Event: "message", Data: "no-space\n two-spaces\n", ID: "7", Retry: 1500},
		{Event: "message", Data: "after", ID: "7", Retry: 1500},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("%+v", evs)
	}
}

func TestSSEUTF8SplitAndALeadingBOM(t *testing.T) {
	in := []byte("\xEF\xBB\xBFdata: 你好\n\n")
	var pieces [][]byte
	for i := range in {
		pieces = append(pieces, in[i:i+1])
	}
	evs, _ := decodeAll(t, pieces...)
	if len(evs) != 1 || evs[0].Data != "你好" {
		t.Fatalf("%+v", evs)
	}
	// a BOM only counts at the start
	evs, _ = decodeAll(t, []byte("data: a\n\n\xEF\xBB\xBFdata: b\n\n"))
	if len(evs) != 1 {
		t.Fatalf("%+v", evs)
	}
}

func TestSSECRLFSplitBetweenCRAndLFIsOneLineEnd(t *testing.T) {
	evs, _ := decodeAll(t, []byte("data: a\r"), []byte("\n\r"), []byte("\n"))
	if len(evs) != 1 || evs[0].Data != "a" {
		t.Fatalf("%+v", evs)
	}
}

func TestSSEPendingTellsAnUnfinishedEventApart(t *testing.T) {
	_, d := decodeAll(t, []byte("data: a\n\n"))
	if d.Pending() {
		t.Fatal("pending after a complete event")
	}
	_, d = decodeAll(t, []byte("data: a\n"))
	if !d.Pending() {
		t.Fatal("not pending inside an event")
	}
	_, d = decodeAll(t, []byte("data: a"))
	if !d.Pending() {
		t.Fatal("not pending inside a line")
	}
}

func TestSSEEventSizeIsBounded(t *testing.T) {
	d := SSEDecoder{MaxEventBytes: 100}
	_, err := d.Append(nil, bytes.Repeat([]byte("x"), 101))
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("an endless line: %v", err)
	}
	if _, err2 := d.Append(nil, []byte("\n\n")); err2 != err {
		t.Fatal("the error is not sticky")
	}
	d = SSEDecoder{MaxEventBytes: 100}
	var evErr error
	for i := 0; i < 20 && evErr == nil; i++ {
		_, evErr = d.Append(nil, []byte("data: 0123456789\n"))
	}
	if !errors.Is(evErr, ErrProtocol) {
		t.Fatal("endless data lines were not bounded")
	}
}

// splitDecode decodes in pieces cut at the given points.
func splitDecode(in []byte, cuts []int) ([]SSEEvent, bool, error) {
	var d SSEDecoder
	var out []SSEEvent
	prev := 0
	for _, c := range append(cuts, len(in)) {
		if c < prev || c > len(in) {
			continue
		}
		var err error
		if out, err = d.Append(out, in[prev:c]); err != nil {
			return out, d.Pending(), err
		}
		prev = c
	}
	return out, d.Pending(), nil
}

func randomCuts(r *rand.Rand, n int) []int {
	var cuts []int
	for i := 1; i < n; i++ {
		if r.IntN(4) == 0 {
			cuts = append(cuts, i)
		}
	}
	return cuts
}

func TestSSESameEventsForAnySplit(t *testing.T) {
	in := []byte("\xEF\xBB\xBF: hi\r\nevent: audio\r\ndata: {\"a\":1}\r\n\r\nid: 3\rdata: x\r\rdata: 你\ndata\n\n")
	want, _, err := splitDecode(in, nil)
	if err != nil || len(want) != 3 || want[2].Data != "你\n" || want[1].ID != "3" {
		t.Fatal(want, err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		got, _, err := splitDecode(in, randomCuts(r, len(in)))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("split %d: %+v", i, got)
		}
	}
}

// FuzzSSEDecoder: any input, cut anywhere, decodes to the same events as in one piece,
// and never panics.
func FuzzSSEDecoder(f *testing.F) {
	f.Add([]byte("event: audio\ndata: {\"seq\":0}\n\n"), uint64(1))
	f.Add([]byte(": keep-alive\r\n\r\ndata: a\rdata: b\r\r"), uint64(2))
	f.Add([]byte("\xEF\xBB\xBFdata: x\n\nid: 1\nretry: 10\ndata\n\n"), uint64(3))
	f.Add([]byte("\xEF\xBB"), uint64(4))
	f.Add([]byte("data: \xff\xfe garbage \x00\n\n\n\r\r\n"), uint64(5))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		want, wantPending, wantErr := splitDecode(in, nil)
		r := rand.New(rand.NewPCG(seed, seed>>7))
		for i := 0; i < 4; i++ {
			got, pending, err := splitDecode(in, randomCuts(r, len(in)))
			if (err == nil) != (wantErr == nil) || pending != wantPending || !reflect.DeepEqual(got, want) {
				t.Fatalf("split changed the result: %+v %v %v vs %+v %v %v", got, pending, err, want, wantPending, wantErr)
			}
		}
		for _, ev := range want { // typed parsing never panics either
			_, _ = ParseEvent(ev)
		}
	})
}
