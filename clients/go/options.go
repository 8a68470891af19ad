package chattts

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"
)

// Option configures a Client (see New).
type Option func(*config) error

type config struct {
	endpoints      []string
	httpClient     *http.Client
	transport      http.RoundTripper
	tlsConfig      *tls.Config
	tlsFiles       *[3]string
	apiKey         string
	headers        http.Header
	timeout        time.Duration
	connectTimeout time.Duration
	readTimeout    time.Duration
	retry          RetryPolicy
	budget         *RetryBudget
	noBudget       bool
	breakerN       int
	breakerCool    time.Duration
	logger         *slog.Logger
	fallback       *fallbackSource
	streamBuffer   int
	maxAudio       int64
	maxJSON        int64
	noValidate     bool
	clock          clock
	rand           func() float64
}

func defaultConfig() *config {
	return &config{
		connectTimeout: 5 * time.Second,
		readTimeout:    120 * time.Second,
		retry:          DefaultRetryPolicy,
		breakerN:       5,
		breakerCool:    30 * time.Second,
		streamBuffer:   256 << 10,
		maxAudio:       DefaultMaxAudioBytes,
		maxJSON:        DefaultMaxJSONBytes,
		headers:        http.Header{},
	}
}

// WithEndpoints adds fallback servers after the base URL, in order of preference: a call
// that fails on one (5xx, 429, connection error, timeout) moves on to the next at once,
// and endpoints whose circuit breaker is open are skipped (client-side failover between
// clusters).
func WithEndpoints(urls ...string) Option {
	return func(c *config) error {
		c.endpoints = append(c.endpoints, urls...)
		return nil
	}
}

// WithHTTPClient sends every request through hc (its Timeout, if any, also cuts streams).
// TLS options do not apply to it.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		c.httpClient = hc
		return nil
	}
}

// WithTransport sends every request through rt (a proxy, a test double, an instrumented
// transport). TLS options do not apply to it.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *config) error {
		c.transport = rt
		return nil
	}
}

// WithTLSConfig uses cfg for https endpoints.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *config) error {
		c.tlsConfig = cfg
		return nil
	}
}

// WithTLSFiles verifies the server with the CA bundle in caFile (PEM; "" keeps the
// system's roots) and, for mTLS, presents the client certificate certFile with its key
// keyFile ("" for none) — the files `chattts-server certs DIR` writes: ca.pem, client.pem,
// client-key.pem.
func WithTLSFiles(caFile, certFile, keyFile string) Option {
	return func(c *config) error {
		if (certFile == "") != (keyFile == "") {
			return fmt.Errorf("chattts: a client certificate needs its key, and a key its certificate")
		}
		c.tlsFiles = &[3]string{caFile, certFile, keyFile}
		return nil
	}
}

// WithAPIKey sends "Authorization: Bearer key" to the servers (never to a fallback URL);
// the key is never logged nor shown in errors.
func WithAPIKey(key string) Option {
	return func(c *config) error {
		if key == "" || key != strings.TrimSpace(key) {
			return fmt.Errorf("chattts: the API key must be printable ASCII without surrounding spaces")
		}
		for _, ch := range key {
			if ch < 0x21 || ch > 0x7e {
				return fmt.Errorf("chattts: the API key must be printable ASCII without surrounding spaces")
			}
		}
		c.apiKey = key
		return nil
	}
}

// WithHeader adds a header to every request.
func WithHeader(name, value string) Option {
	return func(c *config) error {
		c.headers.Add(name, value)
		return nil
	}
}

// WithTimeout is the deadline of a whole call, retries and backoff included (0: none, the
// default; the context's deadline always applies). A stream's deadline covers reading it
// to its end.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		c.timeout = d
		return nil
	}
}

// WithConnectTimeout bounds opening a connection, TLS included (default 5 s). It applies
// to the client's own transport only.
func WithConnectTimeout(d time.Duration) Option {
	return func(c *config) error {
		c.connectTimeout = d
		return nil
	}
}

// WithReadTimeout is the longest wait for the next bytes from the server (default 120 s;
// 0: none). A whole-file synthesis sends nothing until it is done, so this also bounds its
// synthesis time; streams get keep-alives. Time the caller spends between reads does not
// count.
func WithReadTimeout(d time.Duration) Option {
	return func(c *config) error {
		c.readTimeout = d
		return nil
	}
}

// WithRetries sets the number of retries per call (default 2; 0: none).
func WithRetries(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("chattts: retries must be >= 0")
		}
		c.retry.MaxRetries = n
		return nil
	}
}

// WithBackoff sets the full-jitter backoff: base delay and cap (defaults 0.5 s and 8 s).
func WithBackoff(base, maxDelay time.Duration) Option {
	return func(c *config) error {
		c.retry.BaseDelay, c.retry.MaxDelay = base, maxDelay
		return nil
	}
}

// WithRetryPolicy replaces the whole retry policy.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *config) error {
		c.retry = p
		return nil
	}
}

// WithRetryBudget uses b (shareable between clients); nil turns the budget off.
func WithRetryBudget(b *RetryBudget) Option {
	return func(c *config) error {
		c.budget, c.noBudget = b, b == nil
		return nil
	}
}

// WithBreaker sets each endpoint's circuit breaker: threshold consecutive failed attempts
// open it for cooldown (defaults 5 and 30 s); threshold 0 turns breakers off.
func WithBreaker(threshold int, cooldown time.Duration) Option {
	return func(c *config) error {
		c.breakerN, c.breakerCool = threshold, cooldown
		return nil
	}
}

// WithLogger receives one record per call (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithFallbackAudio returns audio (in format: wav, mp3, ...) flagged as fallback when the
// server cannot answer: retries exhausted, circuit open, 5xx, timeouts — never for a 4xx
// input error nor when the caller cancelled.
func WithFallbackAudio(audio []byte, format string) Option {
	return func(c *config) error {
		c.fallback = &fallbackSource{data: audio, format: format, loaded: true}
		return nil
	}
}

// WithFallbackFile is WithFallbackAudio with a file, read when first needed (the format
// from its extension).
func WithFallbackFile(path string) Option {
	return func(c *config) error {
		c.fallback = &fallbackSource{path: path}
		return nil
	}
}

// WithFallbackURL is WithFallbackAudio with an http(s) URL (a pre-recorded prompt),
// fetched when first needed (or by LoadFallback) and kept; the API key is not sent to it.
func WithFallbackURL(url string) Option {
	return func(c *config) error {
		if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
			return fmt.Errorf("chattts: the fallback URL must be http(s)")
		}
		c.fallback = &fallbackSource{url: url}
		return nil
	}
}

// WithStreamBuffer sets the ring buffer of StreamAudio between the network and the
// reader (default 256 KiB): the most a stream holds in memory.
func WithStreamBuffer(bytes int) Option {
	return func(c *config) error {
		if bytes < 1024 {
			return fmt.Errorf("chattts: the stream buffer must be at least 1 KiB")
		}
		c.streamBuffer = bytes
		return nil
	}
}

// WithMaxResponseBytes bounds the answers read whole: audio files (Synthesize, Speech,
// Voices.Sample, a fallback URL; default 64 MiB, about 23 minutes of 24 kHz WAV) and JSON
// documents (the voice library, health; default 16 MiB). A larger answer fails with a
// *ResponseTooLargeError (ErrResponseTooLarge) as soon as its Content-Length announces it,
// or once that many bytes arrived; memory grows with the bytes received, never past the
// bound. Streams are bounded by WithStreamBuffer instead.
func WithMaxResponseBytes(audio, json int64) Option {
	return func(c *config) error {
		if audio < 1 || json < 1 {
			return fmt.Errorf("chattts: the response bounds must be at least 1 byte")
		}
		c.maxAudio, c.maxJSON = audio, json
		return nil
	}
}

// WithoutValidation sends requests without calling Validate: the server decides alone.
func WithoutValidation() Option {
	return func(c *config) error {
		c.noValidate = true
		return nil
	}
}

// tlsFromFiles builds the TLS configuration of WithTLSFiles.
func tlsFromFiles(files [3]string, base *tls.Config) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		cfg = base.Clone()
	}
	if files[0] != "" {
		pem, err := os.ReadFile(files[0])
		if err != nil {
			return nil, fmt.Errorf("chattts: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("chattts: no PEM certificate in CA file %s", files[0])
		}
		cfg.RootCAs = pool
	}
	if files[1] != "" {
		cert, err := tls.LoadX509KeyPair(files[1], files[2])
		if err != nil {
			return nil, fmt.Errorf("chattts: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// CallOption adjusts one call (openai-go's request options): pass them after the request,
// c.Synthesize(ctx, req, chattts.WithCallRetries(0)).
type CallOption func(*callConfig)

type callConfig struct {
	retries     *int
	timeout     *time.Duration
	headers     http.Header
	requestID   string
	traceparent string
}

// WithCallRetries sets this call's retries (the client's WithRetries otherwise).
func WithCallRetries(n int) CallOption {
	return func(c *callConfig) { c.retries = &n }
}

// WithCallTimeout sets this call's deadline, retries included (the client's WithTimeout
// otherwise; 0: none).
func WithCallTimeout(d time.Duration) CallOption {
	return func(c *callConfig) { c.timeout = &d }
}

// WithCallHeader adds a header to this call's requests.
func WithCallHeader(name, value string) CallOption {
	return func(c *callConfig) {
		if c.headers == nil {
			c.headers = http.Header{}
		}
		c.headers.Add(name, value)
	}
}

// WithCallRequestID sends id as this call's X-Request-ID (as ContextWithRequestID does).
func WithCallRequestID(id string) CallOption {
	return func(c *callConfig) { c.requestID = id }
}

// WithCallTraceparent makes this call a span in the caller's W3C trace (as
// ContextWithTraceparent does).
func WithCallTraceparent(traceparent string) CallOption {
	return func(c *callConfig) { c.traceparent = traceparent }
}

// withClock and withRand let the tests drive time and jitter.
func withClock(cl clock) Option {
	return func(c *config) error {
		c.clock = cl
		return nil
	}
}

func withRand(f func() float64) Option {
	return func(c *config) error {
		c.rand = f
		return nil
	}
}
