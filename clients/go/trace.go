package chattts

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"strings"
)

// W3C Trace Context (https://www.w3.org/TR/trace-context/): every call sends a traceparent
// header, "00-<trace id>-<span id>-<flags>", for a span of its own (kept across its retries)
// in the caller's trace (ContextWithTraceparent, WithCallTraceparent) or, without one or
// with an invalid one, in a new sampled trace. The server logs the trace id beside the
// request id, and so does the call's slog record (trace_id, span_id). These are the rules
// of the server's chattts_server/tracecontext.py.

const sampledFlag = 0x01

// traceParent is one traceparent: the trace, and the span of whoever sends it.
type traceParent struct {
	traceID string // 32 lowercase hex digits, not all zero
	spanID  string // 16 lowercase hex digits, not all zero (the header's parent-id)
	flags   byte   // bit 0: sampled
}

// header is the traceparent value, version 00, with only the sampled flag kept.
func (t traceParent) header() string {
	return "00-" + t.traceID + "-" + t.spanID + "-" + hex.EncodeToString([]byte{t.flags & sampledFlag})
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// parseTraceparent reads a traceparent value: version 00 exactly 55 characters; a later
// version (never ff) read by the 00 rules from its first 55 characters, then "-" or nothing;
// lowercase hex only; trace and parent ids not all zero. ok is false for anything else.
func parseTraceparent(v string) (t traceParent, ok bool) {
	v = strings.Trim(v, " \t")
	if len(v) < 55 || (len(v) > 55 && v[55] != '-') {
		return t, false
	}
	head := v[:55]
	version, traceID, spanID, flags := head[0:2], head[3:35], head[36:52], head[53:55]
	if head[2] != '-' || head[35] != '-' || head[52] != '-' {
		return t, false
	}
	if !isLowerHex(version) || !isLowerHex(traceID) || !isLowerHex(spanID) || !isLowerHex(flags) {
		return t, false
	}
	if version == "ff" || (version == "00" && len(v) != 55) {
		return t, false
	}
	if traceID == strings.Repeat("0", 32) || spanID == strings.Repeat("0", 16) {
		return t, false
	}
	f, _ := hex.DecodeString(flags)
	return traceParent{traceID: traceID, spanID: spanID, flags: f[0]}, true
}

func randomHex(n int) string {
	b := make([]byte, n)
	for {
		_, _ = crand.Read(b)
		for _, x := range b {
			if x != 0 {
				return hex.EncodeToString(b)
			}
		}
	}
}

// childSpan is a new span: in parent's trace (its sampled flag kept), or in a new sampled
// trace when there is no (valid) parent.
func childSpan(parent traceParent, ok bool) traceParent {
	if !ok {
		return traceParent{traceID: randomHex(16), spanID: randomHex(8), flags: sampledFlag}
	}
	return traceParent{traceID: parent.traceID, spanID: randomHex(8), flags: parent.flags & sampledFlag}
}

type traceparentKey struct{}

// ContextWithTraceparent makes the calls made with ctx continue the caller's W3C trace:
// traceparent is a header value ("00-<trace id>-<span id>-<flags>", e.g. the one your own
// service received); each call sends the same trace id with a span id of its own. An
// invalid value is ignored, as the standard says: the calls start new traces.
func ContextWithTraceparent(ctx context.Context, traceparent string) context.Context {
	return context.WithValue(ctx, traceparentKey{}, traceparent)
}

// callSpan is the span of a call: in the trace of the call option's traceparent, else the
// context's, else a new one.
func callSpan(ctx context.Context, given string) traceParent {
	if given == "" {
		given, _ = ctx.Value(traceparentKey{}).(string)
	}
	if given == "" {
		return childSpan(traceParent{}, false)
	}
	return childSpan(parseTraceparent(given))
}
