package chattts

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Version of this client, sent in User-Agent.
const Version = "0.1.0"

// DefaultURL is where a chattts-server listens by default.
const DefaultURL = "http://localhost:9700"

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// Client talks to one chattts-server, or to several endpoints with failover. It is safe
// for concurrent use; make one and share it.
type Client struct {
	endpoints []*endpoint
	hc        *http.Client
	apiKey    string
	headers   http.Header
	timeout   time.Duration
	readTO    time.Duration
	retry     RetryPolicy
	budget    *RetryBudget
	logger    *slog.Logger
	fallback  *fallbackSource
	streamBuf int
	maxAudio  int64 // bounds of whole answers
	maxJSON   int64
	validate  bool
	clock     clock
	rand      func() float64

	// Voices is the server's voice library.
	Voices *VoicesService
}

type endpoint struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	display string // base with any password redacted, for logs and errors
	br      *breaker
}

// New makes a client of the server at baseURL (e.g. "http://localhost:9700"); the options
// set timeouts, retries, the breaker, TLS, an API key, fallback audio, more endpoints.
func New(baseURL string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	cfg.endpoints = []string{baseURL}
	for _, opt := range opts {
		if err := opt(cfg); err != nil {
			return nil, err
		}
	}
	c := &Client{
		apiKey:    cfg.apiKey,
		headers:   cfg.headers,
		timeout:   cfg.timeout,
		readTO:    cfg.readTimeout,
		retry:     cfg.retry,
		budget:    cfg.budget,
		logger:    cfg.logger,
		fallback:  cfg.fallback,
		streamBuf: cfg.streamBuffer,
		maxAudio:  cfg.maxAudio,
		maxJSON:   cfg.maxJSON,
		validate:  !cfg.noValidate,
		clock:     cfg.clock,
		rand:      cfg.rand,
	}
	if c.budget == nil && !cfg.noBudget {
		c.budget = DefaultRetryBudget()
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	for _, raw := range cfg.endpoints {
		ep, err := parseEndpoint(raw, cfg.breakerN, cfg.breakerCool)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, ep)
	}
	hc, err := buildHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	c.hc = hc
	c.Voices = &VoicesService{c: c}
	return c, nil
}

func parseEndpoint(raw string, threshold int, cooldown time.Duration) (*endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("chattts: %q is not an http(s) URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("chattts: endpoint %q must not have a query or fragment", u.Redacted())
	}
	return &endpoint{
		base:    strings.TrimRight(u.String(), "/"),
		display: strings.TrimRight(u.Redacted(), "/"),
		br:      &breaker{threshold: threshold, cooldown: cooldown},
	}, nil
}

func buildHTTPClient(cfg *config) (*http.Client, error) {
	tlsWanted := cfg.tlsConfig != nil || cfg.tlsFiles != nil
	if cfg.httpClient != nil || cfg.transport != nil {
		if tlsWanted {
			return nil, fmt.Errorf("chattts: TLS options apply to the client's own transport, not to an injected one")
		}
		if cfg.httpClient != nil {
			return cfg.httpClient, nil
		}
		return &http.Client{Transport: cfg.transport}, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: cfg.connectTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = cfg.connectTimeout
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 100, 100
	tr.IdleConnTimeout = 90 * time.Second
	tr.ResponseHeaderTimeout = 0 // the read watchdog does this
	if tlsWanted {
		tlsCfg := cfg.tlsConfig
		if cfg.tlsFiles != nil {
			var err error
			if tlsCfg, err = tlsFromFiles(*cfg.tlsFiles, cfg.tlsConfig); err != nil {
				return nil, err
			}
		}
		tr.TLSClientConfig = tlsCfg
	}
	return &http.Client{Transport: tr}, nil
}

// BreakerStates reports each endpoint's circuit breaker, by base URL (passwords redacted).
func (c *Client) BreakerStates() map[string]BreakerState {
	now := c.clock.Now()
	out := make(map[string]BreakerState, len(c.endpoints))
	for _, ep := range c.endpoints {
		out[ep.display] = ep.br.state(now)
	}
	return out
}

// RetryBudget is the client's retry budget (nil when turned off).
func (c *Client) RetryBudget() *RetryBudget { return c.budget }

// CloseIdleConnections closes pooled connections that are idle.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// --- request ids ------------------------------------------------------------------------

type requestIDKey struct{}

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._:\-]{1,128}$`)

// ContextWithRequestID makes the calls made with ctx send id as X-Request-ID (to carry an
// upstream trace id into the server's logs); it must match ^[A-Za-z0-9._:-]{1,128}$.
// Without it every call gets a new random id. Retries of a call keep its id.
func ContextWithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func newRequestID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TextHash is how logs name a text: the first 16 hex digits of its SHA-256 (as the
// server's logs do), never the text.
func TextHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:8])
}

// --- clock ------------------------------------------------------------------------------

type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// --- one call ---------------------------------------------------------------------------

// spec describes a call without I/O.
type spec struct {
	op         string // for logs: "synthesize", "stream", "voices.create", ...
	method     string
	path       string // with the query
	body       []byte
	accept     string
	idempotent bool
	guarded    bool // breakers apply
	retries    bool
	answers    func(status int) bool // non-2xx statuses that are answers (readyz's 503)
	text       string                // hashed into the log record
	opts       []CallOption
	// handle reads a successful response inside the retry loop: its errors are retried
	// like the attempt's own, so it should fail only before anything reached the caller.
	handle func(a *attempt) error
}

// call is one call in flight: its id, plan, and the record logged when it ends.
type call struct {
	c        *Client
	spec     *spec
	id       string
	trace    traceParent // the call's span, sent as traceparent by every attempt
	ctx      context.Context
	cancel   context.CancelFunc
	start    time.Time
	plan     *callPlan
	endpoint *endpoint
	headers  http.Header // the call's own (WithCallHeader)
	logged   atomic.Bool
}

func (c *Client) newCall(ctx context.Context, s *spec) (*call, error) {
	var cc callConfig
	for _, o := range s.opts {
		o(&cc)
	}
	id := cc.requestID
	if id == "" {
		id, _ = ctx.Value(requestIDKey{}).(string)
	}
	if id == "" {
		id = newRequestID()
	} else if !requestIDRe.MatchString(id) {
		return nil, &ValidationError{"X-Request-ID", "invalid_value", "request ids match ^[A-Za-z0-9._:-]{1,128}$"}
	}
	now := c.clock.Now()
	timeout := c.timeout
	if cc.timeout != nil {
		timeout = *cc.timeout
	}
	var deadline time.Time
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
		deadline = now.Add(timeout)
	}
	if d, ok := ctx.Deadline(); ok {
		if dl := now.Add(time.Until(d)); deadline.IsZero() || dl.Before(deadline) {
			deadline = dl
		}
	}
	breakers := make([]*breaker, len(c.endpoints))
	for i, ep := range c.endpoints {
		breakers[i] = ep.br
	}
	policy := c.retry
	if cc.retries != nil {
		policy.MaxRetries = max(*cc.retries, 0)
	}
	if !s.retries {
		policy.MaxRetries = 0
	}
	return &call{
		c: c, spec: s, id: id, trace: callSpan(ctx, cc.traceparent), ctx: cctx, cancel: cancel, start: now, headers: cc.headers,
		plan: newCallPlan(policy, c.budget, breakers, s.idempotent, s.guarded, deadline),
	}, nil
}

// run makes attempts until one succeeds (returned open: the caller reads and closes it)
// or the plan gives up.
func (cl *call) run() (*attempt, error) {
	c := cl.c
	var last error
	for {
		if err := cl.ctx.Err(); err != nil {
			return nil, cl.ctxError(err, last)
		}
		idx, err := cl.plan.pick(c.clock.Now(), last)
		if err != nil {
			return nil, err
		}
		cl.endpoint = c.endpoints[idx]
		a, err := cl.attempt(cl.endpoint)
		if err == nil && cl.spec.handle != nil {
			if err = cl.spec.handle(a); err != nil {
				a.close()
			}
		}
		cl.plan.record(err, c.clock.Now())
		if err == nil {
			return a, nil
		}
		last = err
		delay, stop := cl.plan.next(err, c.clock.Now(), c.rand())
		if stop != nil {
			return nil, stop
		}
		if delay > 0 { // 0: failing over to another endpoint at once
			if err := c.clock.Sleep(cl.ctx, delay); err != nil {
				return nil, cl.ctxError(err, last)
			}
		}
	}
}

// ctxError: the caller cancelled (context.Canceled), or the deadline passed (a timeout).
func (cl *call) ctxError(err, last error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		if last != nil && isTimeout(last) {
			return last
		}
		return &TransportError{Op: cl.name(), Endpoint: cl.endpointName(), Timeout: true, RequestID: cl.id,
			RequestSent: last != nil, Err: context.DeadlineExceeded}
	}
	return fmt.Errorf("chattts: %s (request_id=%s): %w", cl.name(), cl.id, err)
}

func (cl *call) name() string {
	path, _, _ := strings.Cut(cl.spec.path, "?")
	return cl.spec.method + " " + path
}

func (cl *call) endpointName() string {
	if cl.endpoint == nil {
		return ""
	}
	return cl.endpoint.display
}

// attempt is one HTTP exchange whose status was a success (or an answer).
type attempt struct {
	cl     *call
	ep     *endpoint
	resp   *http.Response
	body   *watchedBody
	cancel context.CancelFunc
}

func (a *attempt) close() {
	a.body.Close()
	a.cancel()
}

func (cl *call) attempt(ep *endpoint) (*attempt, error) {
	c := cl.c
	actx, cancel := context.WithCancel(cl.ctx)
	var sent atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }}
	actx = httptrace.WithClientTrace(actx, trace)
	var body io.Reader
	if cl.spec.body != nil {
		body = bytes.NewReader(cl.spec.body)
	}
	req, err := http.NewRequestWithContext(actx, cl.spec.method, ep.base+cl.spec.path, body)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("chattts: %s: %w", cl.name(), err)
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	for k, v := range cl.headers {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "chattts-go/"+Version)
	req.Header.Set("X-Request-ID", cl.id)
	req.Header.Set("Traceparent", cl.trace.header())
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if cl.spec.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.spec.accept != "" {
		req.Header.Set("Accept", cl.spec.accept)
	}
	dog := newWatchdog(c.readTO, cancel)
	dog.arm()
	resp, err := c.hc.Do(req)
	dog.disarm()
	if err != nil {
		dog.stop()
		cancel()
		return nil, cl.transportError(ep, err, dog, sent.Load())
	}
	a := &attempt{cl: cl, ep: ep, resp: resp, cancel: cancel,
		body: &watchedBody{rc: resp.Body, dog: dog, cl: cl, ep: ep}}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if ok || (cl.spec.answers != nil && cl.spec.answers(resp.StatusCode)) {
		return a, nil
	}
	data, readErr := io.ReadAll(io.LimitReader(a.body, maxErrorBody))
	a.close()
	if readErr != nil && len(data) == 0 {
		return nil, readErr
	}
	return nil, cl.statusError(ep, resp, data)
}

func (cl *call) transportError(ep *endpoint, err error, dog *watchdog, sent bool) error {
	if dog.fired() {
		return &TransportError{Op: cl.name(), Endpoint: ep.display, RequestSent: sent, Timeout: true, RequestID: cl.id,
			Err: fmt.Errorf("no answer for %s", dog.d)}
	}
	if ctxErr := cl.ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return &TransportError{Op: cl.name(), Endpoint: ep.display, RequestSent: sent, Timeout: true, RequestID: cl.id, Err: ctxErr}
		}
		return fmt.Errorf("chattts: %s (request_id=%s): %w", cl.name(), cl.id, ctxErr)
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop the URL: it is in Endpoint
	}
	return &TransportError{Op: cl.name(), Endpoint: ep.display, RequestSent: sent, Timeout: timeout, RequestID: cl.id, Err: err}
}

func (cl *call) statusError(ep *endpoint, resp *http.Response, body []byte) error {
	e, perr := parseErrorBody(body)
	if perr != nil {
		text := strings.TrimSpace(string(body))
		if len(text) > 200 {
			text = text[:200]
		}
		if text == "" {
			text = "no body"
		}
		e = &APIError{Message: text, Gateway: true}
	}
	e.StatusCode, e.Endpoint = resp.StatusCode, ep.display
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-ID")
	}
	if e.RequestID == "" {
		e.RequestID = cl.id
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), cl.c.clock.Now())
	return e
}

// parseRetryAfter reads seconds (also fractional) or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || s > 1e6 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// watchdog cancels an attempt when a single wait for the server passes d; time between
// the caller's reads does not count.
type watchdog struct {
	d      time.Duration
	t      *time.Timer
	cancel context.CancelFunc
	flag   atomic.Bool
}

func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	return &watchdog{d: d, cancel: cancel}
}

func (w *watchdog) arm() {
	if w.d <= 0 {
		return
	}
	if w.t == nil {
		w.t = time.AfterFunc(w.d, func() {
			w.flag.Store(true)
			w.cancel()
		})
		return
	}
	w.t.Reset(w.d)
}

func (w *watchdog) disarm() {
	if w.t != nil {
		w.t.Stop()
	}
}

func (w *watchdog) stop()       { w.disarm() }
func (w *watchdog) fired() bool { return w.flag.Load() }

// watchedBody is a response body whose reads are watched and whose errors are the
// client's errors.
type watchedBody struct {
	rc     io.ReadCloser
	dog    *watchdog
	cl     *call
	ep     *endpoint
	mu     sync.Mutex
	closed bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.dog.arm()
	n, err := b.rc.Read(p)
	b.dog.disarm()
	if err != nil && err != io.EOF {
		err = b.cl.transportError(b.ep, err, b.dog, true)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.dog.stop()
	return b.rc.Close()
}

// --- the record of a call ---------------------------------------------------------------

// outcome of a call, as logged.
const (
	outcomeOK        = "ok"
	outcomeError     = "error"
	outcomeFallback  = "fallback"
	outcomeCancelled = "cancelled"
)

// finish logs the call's one record (once) and releases its context.
func (cl *call) finish(err error, audioMS int64, fallback bool, extra ...slog.Attr) {
	if !cl.logged.CompareAndSwap(false, true) {
		return
	}
	defer cl.cancel()
	c := cl.c
	outcome, level := outcomeOK, slog.LevelInfo
	switch {
	case fallback:
		outcome, level = outcomeFallback, slog.LevelWarn
	case err != nil && isCallerCancel(err):
		outcome, level = outcomeCancelled, slog.LevelInfo
	case err != nil:
		outcome, level = outcomeError, slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("request_id", cl.id),
		slog.String("trace_id", cl.trace.traceID),
		slog.String("span_id", cl.trace.spanID),
		slog.String("op", cl.spec.op),
		slog.String("endpoint", cl.endpointName()),
		slog.Int("attempts", cl.plan.attempts),
		slog.Int64("elapsed_ms", c.clock.Now().Sub(cl.start).Milliseconds()),
		slog.String("outcome", outcome),
	}
	if cl.spec.text != "" {
		attrs = append(attrs, slog.String("text_hash", TextHash(cl.spec.text)))
	}
	if audioMS >= 0 {
		attrs = append(attrs, slog.Int64("audio_duration_ms", audioMS))
	}
	if err != nil {
		var api *APIError
		if errors.As(err, &api) {
			attrs = append(attrs, slog.Int("status", api.StatusCode), slog.String("code", api.Code))
		}
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	attrs = append(attrs, extra...)
	c.logger.LogAttrs(context.WithoutCancel(cl.ctx), level, "chattts "+cl.name(), attrs...)
}

// fail ends a call that failed and logs it. With fallback, an error the fallback audio may
// answer (FallbackFor) is answered with it: the audio and its *FallbackError.
func (cl *call) fail(err error, fallback bool) (*Audio, error) {
	if fallback {
		fb, ferr := cl.c.FallbackFor(cl.ctx, err) // a URL fetch is detached from cl.ctx
		if fb != nil {
			cl.finish(ferr, fb.DurationMS, true)
			return fb, ferr
		}
		err = ferr
	}
	cl.finish(err, -1, false)
	return nil, err
}

// --- whole-body calls -------------------------------------------------------------------

// Bounds of a whole answer (WithMaxResponseBytes): audio files, and JSON documents.
const (
	DefaultMaxAudioBytes = 64 << 20
	DefaultMaxJSONBytes  = 16 << 20
)

// initialRead is the most readLimited allocates before bytes arrive, whatever the answer's
// Content-Length claims.
const initialRead = 64 << 10

// wholeCall runs a call whose answer is read whole (at most limit bytes), and logs it.
// keep gets each successful answer inside the retry loop (its error is retried like the
// attempt's own, so it should only check and keep the answer: a malformed answer is a
// failed attempt, logged and counted as such) and returns the audio duration to log (-1:
// none). On failure, with fallback, the fallback audio may answer: it is returned with its
// *FallbackError (see call.fail); the audio is nil otherwise.
func (c *Client) wholeCall(ctx context.Context, s *spec, limit int64, fallback bool,
	keep func(a *attempt, data []byte) (audioMS int64, err error)) (*Audio, error) {
	cl, err := c.newCall(ctx, s)
	if err != nil {
		return nil, err
	}
	audioMS := int64(-1)
	s.handle = func(a *attempt) error {
		data, rerr := a.readAll(limit)
		if rerr != nil {
			return rerr
		}
		audioMS, rerr = keep(a, data)
		return rerr
	}
	a, err := cl.run()
	if err != nil {
		return cl.fail(err, fallback)
	}
	a.close()
	cl.finish(nil, audioMS, false)
	return nil, nil
}

// readAll reads a whole answer of at most limit bytes (a *ResponseTooLargeError beyond).
func (a *attempt) readAll(limit int64) ([]byte, error) {
	n := a.resp.ContentLength
	if n > limit {
		return nil, a.tooLarge(limit)
	}
	data, err := readLimited(a.body, n, limit)
	if errors.Is(err, errTooLarge) {
		return nil, a.tooLarge(limit)
	}
	return data, err
}

func (a *attempt) tooLarge(limit int64) error {
	return &ResponseTooLargeError{Op: a.cl.name(), Endpoint: a.ep.display, Limit: limit,
		ContentLength: a.resp.ContentLength, RequestID: a.requestID()}
}

// errTooLarge: readLimited found more than its limit.
var errTooLarge = errors.New("chattts: more than the limit")

// readLimited reads r to its end, at most limit bytes (errTooLarge beyond). It allocates
// no more than initialRead (or contentLength+1, when smaller) up front and grows as bytes
// arrive, never past limit+1: a claimed Content-Length reserves nothing.
func readLimited(r io.Reader, contentLength, limit int64) ([]byte, error) {
	ceiling := limit + 1 // the byte that tells an answer over the limit
	if ceiling <= 0 {
		ceiling = math.MaxInt64
	}
	size := int64(initialRead)
	if contentLength >= 0 && contentLength < size {
		size = contentLength + 1 // room to see the end without growing
	}
	buf := make([]byte, 0, min(size, ceiling))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, errTooLarge
			}
			grown := make([]byte, len(buf), min(2*int64(cap(buf))+512, ceiling))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// requestID is the id the server gave the answer (X-Request-ID), else the call's.
func (a *attempt) requestID() string {
	if id := a.resp.Header.Get("X-Request-ID"); id != "" {
		return id
	}
	return a.cl.id
}

// mediaType is a Content-Type's media type, lower-cased (media types are
// case-insensitive), without its parameters.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// expectType checks the answer's media type: want exactly, or any subtype of a want that
// ends in "/" ("audio/"). A *ProtocolError otherwise.
func (a *attempt) expectType(want string) error {
	ct := a.resp.Header.Get("Content-Type")
	mt := mediaType(ct)
	ok := mt == want
	if strings.HasSuffix(want, "/") {
		ok = len(mt) > len(want) && strings.HasPrefix(mt, want)
	}
	if ok {
		return nil
	}
	what := want
	if strings.HasSuffix(want, "/") {
		what = strings.TrimSuffix(want, "/")
	}
	return &ProtocolError{Msg: fmt.Sprintf("expected %s, got %q", what, ct), RequestID: a.requestID()}
}

// doJSON runs a call with a JSON answer decoded into out (nil: ignore the body). The answer
// is decoded inside the attempt: a malformed one (or one out's check refuses) is a
// *ProtocolError, logged and counted against the breaker as a failure, and not retried.
// s.opts are set by the caller.
func (c *Client) doJSON(ctx context.Context, s *spec, out any) error {
	_, err := c.wholeCall(ctx, s, c.maxJSON, false, func(a *attempt, data []byte) (int64, error) {
		if out == nil {
			return -1, nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return -1, &ProtocolError{Msg: fmt.Sprintf("%s: malformed JSON answer: %v", a.cl.name(), err),
				RequestID: a.requestID()}
		}
		if ch, ok := out.(interface{ check() error }); ok {
			if err := ch.check(); err != nil {
				return -1, &ProtocolError{Msg: fmt.Sprintf("%s: %v", a.cl.name(), err), RequestID: a.requestID()}
			}
		}
		return -1, nil
	})
	return err
}

func jsonBody(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("chattts: encoding the request: %w", err)
	}
	return b, nil
}
