package chattts

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

const (
	tTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	tSpan  = "00f067aa0ba902b7"
)

var headerRe = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func TestTraceparentIsReadByTheW3CRules(t *testing.T) {
	valid := map[string]traceParent{
		"00-" + tTrace + "-" + tSpan + "-01":          {tTrace, tSpan, 1},
		" \t00-" + tTrace + "-" + tSpan + "-00 ":      {tTrace, tSpan, 0},
		"00-" + tTrace + "-" + tSpan + "-ff":          {tTrace, tSpan, 0xff},
		"01-" + tTrace + "-" + tSpan + "-01":          {tTrace, tSpan, 1},
		"cc-" + tTrace + "-" + tSpan + "-01-whatever": {tTrace, tSpan, 1},
	}
	for v, want := range valid {
		if got, ok := parseTraceparent(v); !ok || got != want {
			t.Errorf("%q: %v %v", v, got, ok)
		}
	}
	invalid := []string{
		"", "garbage",
		"00-" + tTrace + "-" + tSpan + "-1",
		"00-" + tTrace + "-" + tSpan + "-01-extra",
		"00-" + strings.Repeat("0", 32) + "-" + tSpan + "-01",
		"00-" + tTrace + "-" + strings.Repeat("0", 16) + "-01",
		"00-" + strings.ToUpper(tTrace) + "-" + tSpan + "-01",
		"00-" + tTrace + "-" + tSpan + "-0G",
		"ff-" + tTrace + "-" + tSpan + "-01",
		"00_" + tTrace + "_" + tSpan + "_01",
		"00-" + tTrace + "-" + tSpan + "-01,00-" + tTrace + "-" + tSpan + "-01",
		"01-" + tTrace + "-" + tSpan + "-01x",
	}
	for _, v := range invalid {
		if got, ok := parseTraceparent(v); ok {
			t.Errorf("%q was read: %v", v, got)
		}
	}
}

func TestASpanKeepsItsTraceAndSampledFlagAndSendsNoUndefinedFlags(t *testing.T) {
	parent := traceParent{tTrace, tSpan, 0xff}
	if parent.header() != "00-"+tTrace+"-"+tSpan+"-01" {
		t.Fatal(parent.header())
	}
	seen := map[string]bool{}
	for range 50 {
		kid := childSpan(parent, true)
		if kid.traceID != tTrace || kid.spanID == tSpan || seen[kid.spanID] || !headerRe.MatchString(kid.header()) {
			t.Fatal(kid)
		}
		seen[kid.spanID] = true
		if fresh := childSpan(traceParent{}, false); fresh.traceID == tTrace || fresh.flags != sampledFlag {
			t.Fatal(fresh)
		}
	}
	if kid := childSpan(traceParent{tTrace, tSpan, 0}, true); kid.flags != 0 {
		t.Fatal("not sampled became sampled")
	}
}

func sentSpan(t *testing.T, r recorded) traceParent {
	t.Helper()
	span, ok := parseTraceparent(r.Header.Get("traceparent"))
	if !ok {
		t.Fatalf("no valid traceparent: %q", r.Header.Get("traceparent"))
	}
	return span
}

func TestEachCallIsASpanKeptAcrossItsRetriesAndLogged(t *testing.T) {
	srv := newScript(t, apiError(503, "overloaded"), wavAnswer(testPCM), wavAnswer(testPCM))
	c, _, logs := testClient(t, []string{srv.srv.URL})
	audio, err := c.Synthesize(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Synthesize(context.Background(), hello()); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	first, retry, second := sentSpan(t, reqs[0]), sentSpan(t, reqs[1]), sentSpan(t, reqs[2])
	if first != retry || second.traceID == first.traceID || first.flags != sampledFlag {
		t.Fatal(first, retry, second)
	}
	if audio.TraceID != first.traceID {
		t.Fatal(audio.TraceID)
	}
	recs := logs.Records()
	if len(recs) != 2 || recs[0].Attrs["trace_id"] != first.traceID || recs[0].Attrs["span_id"] != first.spanID ||
		recs[1].Attrs["trace_id"] != second.traceID {
		t.Fatalf("%+v", recs)
	}
}

func TestACallersTraceComesFromTheContextOrTheCallOption(t *testing.T) {
	srv := newScript(t, repeat(4, wavAnswer(testPCM))...)
	c, _, logs := testClient(t, []string{srv.srv.URL})
	caller := "00-" + tTrace + "-" + tSpan + "-00"
	ctx := ContextWithTraceparent(context.Background(), caller)
	for _, call := range []func() (*Audio, error){
		func() (*Audio, error) { return c.Synthesize(ctx, hello()) },
		func() (*Audio, error) {
			return c.Synthesize(context.Background(), hello(), WithCallTraceparent(caller))
		},
		// an invalid one is ignored: a new trace
		func() (*Audio, error) {
			return c.Synthesize(ContextWithTraceparent(context.Background(), strings.ToUpper(caller)), hello())
		},
		func() (*Audio, error) { return c.Synthesize(context.Background(), hello()) },
	} {
		if _, err := call(); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.requests()
	a, b, bad, plain := sentSpan(t, reqs[0]), sentSpan(t, reqs[1]), sentSpan(t, reqs[2]), sentSpan(t, reqs[3])
	if a.traceID != tTrace || b.traceID != tTrace || a.spanID == tSpan || a.spanID == b.spanID || a.flags != 0 {
		t.Fatal(a, b)
	}
	if bad.traceID == tTrace || plain.traceID == tTrace || bad.traceID == plain.traceID {
		t.Fatal(bad, plain)
	}
	if logs.Records()[0].Attrs["trace_id"] != tTrace {
		t.Fatalf("%+v", logs.Records()[0])
	}
}

func TestAStreamNamesItsTrace(t *testing.T) {
	srv := newScript(t, sseAnswer(false, audioEvent(0, testPCM), doneEvent(10)))
	c, _, _ := testClient(t, []string{srv.srv.URL})
	ctx := ContextWithTraceparent(context.Background(), "00-"+tTrace+"-"+tSpan+"-01")
	s, err := c.Stream(ctx, hello())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for s.Next() {
	}
	if s.Err() != nil || s.TraceID() != tTrace || sentSpan(t, srv.requests()[0]).traceID != tTrace {
		t.Fatal(s.Err(), s.TraceID())
	}
}
