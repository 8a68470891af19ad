package chattts

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetries503WithFullJitterBackoffUnderOneRequestID(t *testing.T) {
	srv := newScript(t, apiError(503, "overloaded"), apiError(503, "overloaded"), wavAnswer(testPCM))
	c, clk, _ := testClient(t, []string{srv.srv.URL})
	audio, err := c.Synthesize(context.Background(), hello())
	if err != nil {
		t.Fatal(err)
	}
	if pcm, _ := audio.PCM(); !slices.Equal(pcm, testPCM) {
		t.Fatalf("pcm %v", pcm)
	}
	// rand 0.5 × min(8 s, 0.5 s·2ⁿ): 250 ms, then 500 ms
	if got, want := clk.Sleeps(), []time.Duration{ms(250), ms(500)}; !slices.Equal(got, want) {
		t.Fatalf("sleeps %v, want %v", got, want)
	}
	reqs := srv.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	id := reqs[0].Header.Get("X-Request-ID")
	if !requestIDRe.MatchString(id) {
		t.Fatalf("request id %q", id)
	}
	for _, r := range reqs {
		if r.Header.Get("X-Request-ID") != id {
			t.Fatal("a retry changed the request id")
		}
	}
	if audio.RequestID != id {
		t.Fatalf("audio request id %q, want %q", audio.RequestID, id)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	p := RetryPolicy{MaxRetries: 10, BaseDelay: ms(500), MaxDelay: 8 * time.Second, MaxRetryAfter: 30 * time.Second}
	var got []time.Duration
	for n := 0; n < 7; n++ {
		got = append(got, p.Delay(n, 0, 0.999999))
	}
	want := []time.Duration{ms(500), ms(1000), ms(2000), ms(4000), ms(8000), ms(8000), ms(8000)}
	for i := range want {
		if d := want[i] - got[i]; d < 0 || d > time.Millisecond {
			t.Fatalf("delays %v, want ~%v", got, want)
		}
	}
	if d := p.Delay(3, 0, 0); d != 0 {
		t.Fatalf("full jitter starts at 0, got %v", d)
	}
	if d := p.Delay(200, 0, 0.5); d != 4*time.Second {
		t.Fatalf("no overflow for large retry numbers: %v", d)
	}
}

func TestRetryAfterIsHonouredAndCapped(t *testing.T) {
	srv := newScript(t,
		apiError(503, "overloaded", "Retry-After", "3"),
		apiError(429, "rate_limited", "Retry-After", "100"),
		wavAnswer(testPCM))
	c, clk, _ := testClient(t, []string{srv.srv.URL})
	if _, err := c.Synthesize(context.Background(), hello()); err != nil {
		t.Fatal(err)
	}
	if got, want := clk.Sleeps(), []time.Duration{3 * time.Second, 30 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("sleeps %v, want %v", got, want)
	}
}

func TestRetryAfterAsAnHTTPDate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	if d := parseRetryAfter(now.Add(7*time.Second).UTC().Format(http.TimeFormat), now); d != 7*time.Second {
		t.Fatalf("got %v", d)
	}
	for _, bad := range []string{"", "soon", "-3"} {
		if d := parseRetryAfter(bad, now); d != 0 {
			t.Fatalf("%q gave %v", bad, d)
		}
	}
	if d := parseRetryAfter("1.5", now); d != 1500*time.Millisecond {
		t.Fatalf("got %v", d)
	}
}

func TestInputErrorsAnd500AreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{{400, "empty_text"}, {404, "voice_not_found"}, {401, "invalid_api_key"}, {409, "voice_exists"}, {500, "internal_error"}} {
		srv := newScript(t, apiError(tc.status, tc.code))
		c, clk, _ := testClient(t, []string{srv.srv.URL})
		_, err := c.Synthesize(context.Background(), hello())
		var api *APIError
		if !errors.As(err, &api) || api.StatusCode != tc.status || api.Code != tc.code || api.Param != "text" {
			t.Fatalf("%d: got %v", tc.status, err)
		}
		if api.RequestID != srv.requests()[0].Header.Get("X-Request-ID") {
			t.Fatalf("request id %q", api.RequestID)
		}
		if srv.count() != 1 || len(clk.Sleeps()) != 0 {
			t.Fatalf("%d was retried: %d requests", tc.status, srv.count())
		}
	}
}

func TestGatewayErrorsAndNonJSONBodies(t *testing.T) {
	gateway := func(w http.ResponseWriter, r *http.Request) { http.Error(w, "<html>bad gateway</html>", 502) }
	srv := newScript(t, gateway, apiError(504, "deadline_exceeded"), gateway)
	c, _, _ := testClient(t, []string{srv.srv.URL})
	_, err := c.Synthesize(context.Background(), hello())
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != 502 || api.Message != "<html>bad gateway</html>" {
		t.Fatalf("got %v", err)
	}
	if srv.count() != 3 {
		t.Fatalf("%d requests, want 3", srv.count())
	}
}

func TestAGatewaysBare500IsRetriedButTheServers500IsNot(t *testing.T) {
	bare := func(w http.ResponseWriter, r *http.Request) { http.Error(w, "Internal Server Error", 500) }
	srv := newScript(t, bare, wavAnswer(testPCM))
	c, _, _ := testClient(t, []string{srv.srv.URL})
	if _, err := c.Synthesize(context.Background(), hello()); err != nil || srv.count() != 2 {
		t.Fatalf("a proxy's bare 500: %v after %d requests, want success after 2", err, srv.count())
	}
	srv = newScript(t, bare)
	c, _, _ = testClient(t, []string{srv.srv.URL})
	seed := int64(3)
	_, err := c.Voices.Create(context.Background(), &VoiceCreate{Name: "v", Seed: &seed})
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != 500 || !api.Gateway || srv.count() != 1 {
		t.Fatalf("a change is not repeated after a bare 500: %v after %d requests", err, srv.count())
	}
}

func TestConnectionFailuresAreRetriedAndTyped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	c, clk, _ := testClient(t, []string{dead})
	_, err = c.Synthesize(context.Background(), hello())
	var te *TransportError
	if !errors.As(err, &te) || te.RequestSent || te.Timeout {
		t.Fatalf("got %#v", err)
	}
	if len(clk.Sleeps()) != 2 {
		t.Fatalf("sleeps %v: want 2 retries", clk.Sleeps())
	}
	// a change that surely was not sent is retried too
	_, err = c.Voices.Create(context.Background(), &VoiceCreate{Name: "n", Seed: Ptr[int64](1)})
	if !errors.As(err, &te) || len(clk.Sleeps()) != 4 {
		t.Fatalf("create: %v, sleeps %v", err, clk.Sleeps())
	}
}

func TestAChangeIsNotRepeatedAfterTheServerMayHaveDoneIt(t *testing.T) {
	cut := func(w http.ResponseWriter, r *http.Request) { hijackClose(w) }
	srv := newScript(t, cut, apiError(502, "bad_gateway"))
	c, _, _ := testClient(t, []string{srv.srv.URL})
	ctx := context.Background()
	_, err := c.Voices.Create(ctx, &VoiceCreate{Name: "n", Seed: Ptr[int64](1)})
	var te *TransportError
	if !errors.As(err, &te) || !te.RequestSent || srv.count() != 1 {
		t.Fatalf("a dropped create: %v after %d requests", err, srv.count())
	}
	_, err = c.Voices.Create(ctx, &VoiceCreate{Name: "n", Seed: Ptr[int64](1)})
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != 502 || srv.count() != 2 {
		t.Fatalf("a 502 create: %v after %d requests", err, srv.count())
	}
	// 503 is a refusal before any work: repeated
	srv.add(apiError(503, "overloaded"), func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.Write([]byte(`{"id":"n","kind":"seed","seed":1}`))
	})
	v, err := c.Voices.Create(ctx, &VoiceCreate{Name: "n", Seed: Ptr[int64](1)})
	if err != nil || v.ID != "n" || srv.count() != 4 {
		t.Fatalf("%v %v after %d requests", v, err, srv.count())
	}
}

func TestReadTimeoutsAreRetriedAsTimeouts(t *testing.T) {
	release := make(chan struct{})
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	srv := newScript(t, hang, hang, hang)
	t.Cleanup(func() { close(release) })
	c, clk, _ := testClient(t, []string{srv.srv.URL}, WithReadTimeout(ms(30)))
	_, err := c.Synthesize(context.Background(), hello())
	var te *TransportError
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &te) || !te.Timeout {
		t.Fatalf("got %v", err)
	}
	if srv.count() != 3 || len(clk.Sleeps()) != 2 {
		t.Fatalf("%d requests, sleeps %v", srv.count(), clk.Sleeps())
	}
}

func TestTheDeadlineStopsRetries(t *testing.T) {
	srv := newScript(t, apiError(503, "overloaded", "Retry-After", "4"), apiError(503, "overloaded", "Retry-After", "4"))
	c, clk, _ := testClient(t, []string{srv.srv.URL}, WithTimeout(6*time.Second))
	_, err := c.Synthesize(context.Background(), hello())
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != 503 {
		t.Fatalf("got %v", err)
	}
	// one wait of 4 s fits the 6 s deadline; the second would end at 8 s: not made
	if srv.count() != 2 || !slices.Equal(clk.Sleeps(), []time.Duration{4 * time.Second}) {
		t.Fatalf("%d requests, sleeps %v", srv.count(), clk.Sleeps())
	}
}

func TestBudgetExhaustionStopsRetrying(t *testing.T) {
	srv := newScript(t, repeat(4, apiError(503, "overloaded"))...)
	budget := NewRetryBudget(10, 5, 10, 1)
	c, _, _ := testClient(t, []string{srv.srv.URL}, WithRetryBudget(budget), WithBreaker(0, 0))
	ctx := context.Background()
	_, err := c.Synthesize(ctx, hello())
	if errors.Is(err, ErrRetryBudgetExhausted) || srv.count() != 3 || budget.Tokens() != 0 {
		t.Fatalf("first call: %v, %d requests, %d tokens", err, srv.count(), budget.Tokens())
	}
	_, err = c.Synthesize(ctx, hello())
	var api *APIError
	if !errors.Is(err, ErrRetryBudgetExhausted) || !errors.As(err, &api) || api.StatusCode != 503 {
		t.Fatalf("second call: %v", err)
	}
	if srv.count() != 4 {
		t.Fatalf("the dry budget let a retry through: %d requests", srv.count())
	}
	// a first-attempt success puts a token back, a retried success returns its cost
	srv.add(wavAnswer(testPCM), wavAnswer(testPCM), wavAnswer(testPCM), wavAnswer(testPCM), wavAnswer(testPCM))
	for i := 0; i < 5; i++ {
		if _, err := c.Synthesize(ctx, hello()); err != nil {
			t.Fatal(err)
		}
	}
	if budget.Tokens() != 5 {
		t.Fatalf("%d tokens after 5 successes", budget.Tokens())
	}
	srv.add(apiError(503, "overloaded"), wavAnswer(testPCM))
	if _, err := c.Synthesize(ctx, hello()); err != nil || budget.Tokens() != 5 {
		t.Fatalf("%v, %d tokens", err, budget.Tokens())
	}
}

func TestTimeoutsCostMoreOfTheBudget(t *testing.T) {
	b := NewRetryBudget(20, 5, 10, 1)
	if cost, ok := b.take(true); !ok || cost != 10 || b.Tokens() != 10 {
		t.Fatal(cost, ok, b.Tokens())
	}
	if cost, ok := b.take(false); !ok || cost != 5 || b.Tokens() != 5 {
		t.Fatal(cost, ok, b.Tokens())
	}
	if _, ok := b.take(true); ok {
		t.Fatal("took more than was left")
	}
	b.give(100)
	if b.Tokens() != 20 {
		t.Fatal("refilled past capacity")
	}
}

func TestBreakerOpensFailsFastThenHalfOpens(t *testing.T) {
	srv := newScript(t, repeat(3, apiError(503, "overloaded"))...)
	c, clk, _ := testClient(t, []string{srv.srv.URL}, WithRetries(0), WithBreaker(3, 10*time.Second))
	ctx := context.Background()
	state := func() BreakerState { return c.BreakerStates()[srv.srv.URL] }
	for i := 0; i < 3; i++ {
		if state() != BreakerClosed {
			t.Fatalf("open after %d failures", i)
		}
		c.Synthesize(ctx, hello())
	}
	if state() != BreakerOpen {
		t.Fatalf("state %v after 3 failures", state())
	}
	_, err := c.Synthesize(ctx, hello())
	var open *CircuitOpenError
	if !errors.Is(err, ErrCircuitOpen) || !errors.As(err, &open) || open.RetryIn != 10*time.Second {
		t.Fatalf("got %v", err)
	}
	if srv.count() != 3 {
		t.Fatal("an open circuit let a request through")
	}
	clk.Advance(10 * time.Second)
	if state() != BreakerHalfOpen {
		t.Fatalf("state %v after the cooldown", state())
	}
	// the trial fails: open again for a full cooldown
	srv.add(apiError(500, "internal_error"))
	c.Synthesize(ctx, hello())
	if state() != BreakerOpen || srv.count() != 4 {
		t.Fatalf("state %v, %d requests", state(), srv.count())
	}
	clk.Advance(10 * time.Second)
	srv.add(wavAnswer(testPCM))
	if _, err := c.Synthesize(ctx, hello()); err != nil {
		t.Fatal(err)
	}
	if state() != BreakerClosed {
		t.Fatalf("state %v after a good trial", state())
	}
}

func TestHalfOpenAdmitsOneTrialAtATime(t *testing.T) {
	clk := newFakeClock()
	b := &breaker{threshold: 1, cooldown: time.Second}
	b.failure(clk.Now())
	if _, ok := b.acquire(clk.Now()); ok {
		t.Fatal("open breaker admitted a call")
	}
	clk.Advance(time.Second)
	trial, ok := b.acquire(clk.Now())
	if !trial || !ok {
		t.Fatal("no trial after the cooldown")
	}
	if _, ok := b.acquire(clk.Now()); ok {
		t.Fatal("a second call while the trial runs")
	}
	b.release(true) // the trial was cancelled: another may go
	if trial, ok := b.acquire(clk.Now()); !trial || !ok {
		t.Fatal("no new trial after a cancelled one")
	}
}

func TestInputErrorsDoNotCountAgainstTheBreaker(t *testing.T) {
	srv := newScript(t, append(repeat(2, apiError(503, "overloaded")),
		apiError(400, "empty_text"), apiError(503, "overloaded"), apiError(503, "overloaded"))...)
	c, _, _ := testClient(t, []string{srv.srv.URL}, WithRetries(0), WithBreaker(3, time.Minute))
	for i := 0; i < 5; i++ {
		c.Synthesize(context.Background(), hello())
	}
	if s := c.BreakerStates()[srv.srv.URL]; s != BreakerClosed {
		t.Fatalf("a 400 between failures did not reset the count: %v", s)
	}
}

func TestFailoverMovesToTheNextEndpointAtOnce(t *testing.T) {
	a := newScript(t, repeat(3, apiError(503, "overloaded"))...)
	b := newScript(t, repeat(4, wavAnswer(testPCM))...)
	c, clk, sink := testClient(t, []string{a.srv.URL, b.srv.URL}, WithBreaker(3, time.Minute))
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		audio, err := c.Synthesize(ctx, hello())
		if err != nil || audio.Endpoint != b.srv.URL {
			t.Fatalf("call %d: %v from %v", i, err, audio)
		}
	}
	if len(clk.Sleeps()) != 0 {
		t.Fatalf("failover waited: %v", clk.Sleeps())
	}
	// A failed 3 times and opened: the 4th call went straight to B
	if a.count() != 3 || b.count() != 4 {
		t.Fatalf("A %d, B %d requests", a.count(), b.count())
	}
	if st := c.BreakerStates(); st[a.srv.URL] != BreakerOpen || st[b.srv.URL] != BreakerClosed {
		t.Fatalf("states %v", st)
	}
	recs := sink.Records()
	if recs[0].Attrs["attempts"] != int64(2) || recs[3].Attrs["attempts"] != int64(1) || recs[0].Attrs["endpoint"] != b.srv.URL {
		t.Fatalf("records %v", recs)
	}
}

func TestFailoverWhenEveryEndpointFailsRetriesWholeRounds(t *testing.T) {
	a := newScript(t, repeat(3, apiError(503, "overloaded"))...)
	b := newScript(t, repeat(3, apiError(502, "bad_gateway"))...)
	c, clk, _ := testClient(t, []string{a.srv.URL, b.srv.URL}, WithBreaker(0, 0))
	_, err := c.Synthesize(context.Background(), hello())
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != 502 || api.Endpoint != b.srv.URL {
		t.Fatalf("got %v", err)
	}
	// A, B, wait, A, B, wait, A, B
	if a.count() != 3 || b.count() != 3 || len(clk.Sleeps()) != 2 {
		t.Fatalf("A %d, B %d, sleeps %v", a.count(), b.count(), clk.Sleeps())
	}
}

func TestFallbackIsReturnedAndFlagged(t *testing.T) {
	srv := newScript(t, repeat(3, apiError(503, "overloaded"))...)
	prompt := append(WAVHeader(24000, 48000), make([]byte, 48000)...)
	c, _, sink := testClient(t, []string{srv.srv.URL}, WithFallbackAudio(prompt, "wav"))
	audio, err := c.Synthesize(context.Background(), hello())
	var api *APIError
	if !errors.Is(err, ErrFallbackUsed) || !errors.As(err, &api) || api.StatusCode != 503 {
		t.Fatalf("got %v", err)
	}
	if audio == nil || !audio.Fallback || audio.Format != "wav" || audio.SampleRate != 24000 || audio.DurationMS != 1000 {
		t.Fatalf("audio %+v", audio)
	}
	rec := sink.Records()[0]
	if rec.Attrs["outcome"] != "fallback" || rec.Level != slog.LevelWarn {
		t.Fatalf("record %+v", rec)
	}
	// never for input errors
	srv.add(apiError(400, "empty_text"))
	audio, err = c.Synthesize(context.Background(), hello())
	if audio != nil || errors.Is(err, ErrFallbackUsed) {
		t.Fatalf("fallback for a 400: %v", err)
	}
}

func TestFallbackWhenTheCircuitIsOpenAndNotWhenTheCallerCancels(t *testing.T) {
	srv := newScript(t, apiError(503, "overloaded"))
	c, _, _ := testClient(t, []string{srv.srv.URL}, WithRetries(0), WithBreaker(1, time.Minute),
		WithFallbackAudio([]byte("ID3fake"), "mp3"))
	ctx := context.Background()
	c.Synthesize(ctx, hello())
	audio, err := c.Synthesize(ctx, hello())
	if !errors.Is(err, ErrFallbackUsed) || !errors.Is(err, ErrCircuitOpen) || !audio.Fallback || audio.Format != "mp3" {
		t.Fatalf("got %v %+v", err, audio)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	audio, err = c.Synthesize(cancelled, hello())
	if audio != nil || !errors.Is(err, context.Canceled) || errors.Is(err, ErrFallbackUsed) {
		t.Fatalf("a cancelled call: %v", err)
	}
}

func TestFallbackURLIsFetchedOnceLazilyWithoutTheAPIKey(t *testing.T) {
	var fetches atomic.Int32
	prompt := newScript(t, func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.Header.Get("Authorization") != "" {
			t.Error("the API key went to the fallback URL")
		}
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Write([]byte("ID3 sorry"))
	})
	srv := newScript(t, repeat(2, apiError(500, "internal_error"))...)
	c, _, _ := testClient(t, []string{srv.srv.URL}, WithFallbackURL(prompt.srv.URL+"/sorry"), WithAPIKey("sk-secret"))
	if fetches.Load() != 0 {
		t.Fatal("fetched before it was needed")
	}
	for i := 0; i < 2; i++ {
		audio, err := c.Synthesize(context.Background(), hello())
		if !errors.Is(err, ErrFallbackUsed) || string(audio.Data) != "ID3 sorry" || audio.Format != "mp3" {
			t.Fatalf("got %v %+v", err, audio)
		}
	}
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches", fetches.Load())
	}
}

func TestAnUnloadableFallbackLeavesTheError(t *testing.T) {
	srv := newScript(t, apiError(500, "internal_error"))
	c, _, _ := testClient(t, []string{srv.srv.URL}, WithFallbackFile(t.TempDir()+"/missing.wav"))
	audio, err := c.Synthesize(context.Background(), hello())
	var api *APIError
	if audio != nil || errors.Is(err, ErrFallbackUsed) || !errors.As(err, &api) || api.StatusCode != 500 {
		t.Fatalf("got %v", err)
	}
	mustContain(t, err.Error(), "loading the fallback audio")
}
