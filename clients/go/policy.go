package chattts

// The client's decisions, free of I/O: when to retry and how long to wait, the retry
// budget, the circuit breakers and the choice of endpoint. client.go only carries them out.

import (
	"context"
	"errors"
	"sync"
	"time"
)

// RetryPolicy says when and how long to wait before retrying.
//
// Retried: 429, 502, 503, 504, connection failures and timeouts, and a stream only while
// none of its audio has reached the caller. A call that changes the voice library
// (create, update, delete, import) is retried only when the server surely did nothing:
// the connection could not be opened, or a 429 or 503 (refused before any work). Never
// retried: a malformed answer (a *ProtocolError: wrong content type, bad JSON, a bad
// event; it counts against the breaker) and an answer over the size bounds (a
// *ResponseTooLargeError).
//
// The wait before retry n (0-based) is the server's Retry-After capped at MaxRetryAfter,
// else "full jitter" backoff: uniform in [0, min(MaxDelay, BaseDelay·2ⁿ)).
type RetryPolicy struct {
	MaxRetries    int
	BaseDelay     time.Duration
	MaxDelay      time.Duration
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy: 2 retries (as the original description asks), 0.5 s base, 8 s cap,
// Retry-After honoured up to 30 s.
var DefaultRetryPolicy = RetryPolicy{
	MaxRetries:    2,
	BaseDelay:     500 * time.Millisecond,
	MaxDelay:      8 * time.Second,
	MaxRetryAfter: 30 * time.Second,
}

// Delay is the wait before retry number retry (0-based); retryAfter is the server's
// Retry-After (0: none); rnd is uniform in [0, 1).
func (p RetryPolicy) Delay(retry int, retryAfter time.Duration, rnd float64) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, p.MaxRetryAfter)
	}
	ceiling := p.MaxDelay
	if retry < 62 && p.BaseDelay > 0 {
		if d := p.BaseDelay << retry; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(rnd * float64(ceiling))
}

// RetryBudget is a token bucket shared by every call of a client (or of several clients):
// each retry or failover takes RetryCost tokens (TimeoutCost after a timeout), a call
// that succeeds at once puts SuccessRefill back, and a retry that succeeds gives its cost
// back. An empty bucket stops retrying, so a dead server is not hammered: calls fail
// after one attempt (ErrRetryBudgetExhausted) until successes refill it. This is the
// scheme of aws-sdk-go-v2's retry token bucket.
type RetryBudget struct {
	mu                                    sync.Mutex
	capacity, tokens                      int
	retryCost, timeoutCost, successRefill int
}

// NewRetryBudget makes a full bucket of capacity tokens. DefaultRetryBudget is
// NewRetryBudget(500, 5, 10, 1).
func NewRetryBudget(capacity, retryCost, timeoutCost, successRefill int) *RetryBudget {
	return &RetryBudget{capacity: capacity, tokens: capacity, retryCost: retryCost,
		timeoutCost: timeoutCost, successRefill: successRefill}
}

// DefaultRetryBudget returns the budget a client gets unless told otherwise.
func DefaultRetryBudget() *RetryBudget { return NewRetryBudget(500, 5, 10, 1) }

// Tokens left.
func (b *RetryBudget) Tokens() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tokens
}

func (b *RetryBudget) take(timeout bool) (int, bool) {
	if b == nil {
		return 0, true
	}
	cost := b.retryCost
	if timeout {
		cost = b.timeoutCost
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < cost {
		return 0, false
	}
	b.tokens -= cost
	return cost, true
}

func (b *RetryBudget) give(n int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.capacity, b.tokens+n)
}

// BreakerState is a circuit breaker's state.
type BreakerState int

const (
	BreakerClosed   BreakerState = iota // calls go through
	BreakerOpen                         // calls fail fast, without the network
	BreakerHalfOpen                     // the cooldown passed: one trial call may go
)

func (s BreakerState) String() string {
	return [...]string{"closed", "open", "half-open"}[s]
}

// breaker guards one endpoint: Threshold consecutive failed attempts (server trouble: 5xx,
// 429, transport errors, broken streams; never a 4xx) open it; after Cooldown one trial
// attempt goes through (half-open): its success closes it, its failure opens it again.
type breaker struct {
	mu        sync.Mutex
	threshold int // 0: never opens
	cooldown  time.Duration
	failures  int
	open      bool
	openedAt  time.Time
	trial     bool
}

func (b *breaker) stateLocked(now time.Time) BreakerState {
	if !b.open {
		return BreakerClosed
	}
	if now.Sub(b.openedAt) >= b.cooldown {
		return BreakerHalfOpen
	}
	return BreakerOpen
}

func (b *breaker) state(now time.Time) BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked(now)
}

// admits reports whether acquire would let a call through now.
func (b *breaker) admits(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stateLocked(now)
	return s == BreakerClosed || (s == BreakerHalfOpen && !b.trial)
}

// acquire admits an attempt (trial: it is the half-open trial) or refuses it.
func (b *breaker) acquire(now time.Time) (trial, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.stateLocked(now) {
	case BreakerClosed:
		return false, true
	case BreakerHalfOpen:
		if !b.trial {
			b.trial = true
			return true, true
		}
	}
	return false, false
}

// retryIn is how long until a trial may go (0 if one may go now or is in flight).
func (b *breaker) retryIn(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return 0
	}
	return max(0, b.cooldown-now.Sub(b.openedAt))
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures, b.open, b.trial = 0, false, false
}

func (b *breaker) failure(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.trial || (!b.open && b.threshold > 0 && b.failures >= b.threshold) {
		b.open, b.openedAt, b.trial = true, now, false
	}
}

// release ends an attempt without a verdict (the caller cancelled): a trial may go again.
func (b *breaker) release(trial bool) {
	if trial {
		b.mu.Lock()
		b.trial = false
		b.mu.Unlock()
	}
}

// record gives an attempt's outcome to the breaker.
func (b *breaker) record(trial bool, err error, now time.Time) {
	switch {
	case err == nil:
		b.success()
	case isCallerCancel(err):
		b.release(trial)
	case serverFault(err):
		b.failure(now)
	default: // the server answered (a 4xx): it is healthy
		b.success()
	}
}

func retryStatus(code int) bool {
	return code == 429 || code == 502 || code == 503 || code == 504
}

// refusedStatus: refused before any work, safe to repeat even a change.
func refusedStatus(code int) bool { return code == 429 || code == 503 }

// retryable reports whether err, from an attempt that delivered nothing to the caller, is
// worth another attempt.
func retryable(err error, idempotent bool) bool {
	if isCallerCancel(err) {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		if api.InStream {
			return false
		}
		if idempotent { // and a gateway's bare 500: the server behind it died, not refused
			return retryStatus(api.StatusCode) || (api.StatusCode == 500 && api.Gateway)
		}
		return refusedStatus(api.StatusCode)
	}
	var te *TransportError
	if errors.As(err, &te) {
		return idempotent || !te.RequestSent
	}
	return false
}

// serverFault reports whether err is the server's (or the network's) trouble rather than
// the caller's: it counts against the breaker and may be answered with the fallback.
func serverFault(err error) bool {
	if err == nil || isCallerCancel(err) {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.StatusCode >= 500 || api.StatusCode == 429 || (api.InStream && api.StatusCode == 0)
	}
	var te *TransportError
	var pe *ProtocolError
	var se *StreamInterruptedError
	return errors.As(err, &te) || errors.As(err, &pe) || errors.As(err, &se) ||
		errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrRetryBudgetExhausted)
}

// isCallerCancel: the caller's context was cancelled (not a deadline: that is a timeout).
func isCallerCancel(err error) bool {
	return errors.Is(err, context.Canceled)
}

func isTimeout(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

func retryAfterOf(err error) time.Duration {
	var api *APIError
	if errors.As(err, &api) {
		return api.RetryAfter
	}
	return 0
}

// callPlan decides the attempts of one call: which endpoint, whether to retry or fail
// over, how long to wait, and the budget. Not safe for concurrent use (one per call).
type callPlan struct {
	policy     RetryPolicy
	budget     *RetryBudget
	breakers   []*breaker // one per endpoint, in order of preference
	idempotent bool
	guarded    bool      // breakers apply (health checks are not guarded)
	deadline   time.Time // zero: none

	tried    []bool // endpoints tried in this round
	retries  int    // rounds after the first
	attempts int
	cost     int  // tokens taken for the latest retry or failover
	current  int  // endpoint of the current attempt
	trial    bool // the current attempt is a breaker trial
}

func newCallPlan(policy RetryPolicy, budget *RetryBudget, breakers []*breaker, idempotent, guarded bool, deadline time.Time) *callPlan {
	return &callPlan{policy: policy, budget: budget, breakers: breakers, idempotent: idempotent,
		guarded: guarded, deadline: deadline, tried: make([]bool, len(breakers)), current: -1}
}

// pick acquires the endpoint of the next attempt: the first, in order, not yet tried in
// this round whose breaker admits it. With none: a *CircuitOpenError if no attempt was
// made yet, else last (the error of the previous attempt).
func (p *callPlan) pick(now time.Time, last error) (int, error) {
	for i, b := range p.breakers {
		if p.tried[i] {
			continue
		}
		trial, ok := false, true
		if p.guarded {
			trial, ok = b.acquire(now)
		}
		if ok {
			p.tried[i], p.current, p.trial = true, i, trial
			p.attempts++
			return i, nil
		}
	}
	if last != nil {
		return -1, last
	}
	retryIn := time.Duration(-1)
	for _, b := range p.breakers {
		if d := b.retryIn(now); retryIn < 0 || d < retryIn {
			retryIn = d
		}
	}
	return -1, &CircuitOpenError{RetryIn: max(retryIn, 0)}
}

// record gives the current attempt's outcome to its endpoint's breaker and, on success,
// to the budget.
func (p *callPlan) record(err error, now time.Time) {
	if p.current < 0 {
		return
	}
	if p.guarded {
		p.breakers[p.current].record(p.trial, err, now)
	}
	if err == nil {
		if p.attempts == 1 {
			p.budget.give(p.successRefill())
		} else {
			p.budget.give(p.cost)
		}
	}
}

func (p *callPlan) successRefill() int {
	if p.budget == nil {
		return 0
	}
	return p.budget.successRefill
}

// next decides what follows a failed attempt that delivered nothing: retry after delay
// (0: fail over at once to another endpoint), or stop and return the error to give.
func (p *callPlan) next(err error, now time.Time, rnd float64) (delay time.Duration, stop error) {
	if !retryable(err, p.idempotent) {
		return 0, err
	}
	if !p.deadline.IsZero() && !now.Before(p.deadline) {
		return 0, err
	}
	failover := false
	for i, b := range p.breakers {
		if !p.tried[i] && (!p.guarded || b.admits(now)) {
			failover = true
			break
		}
	}
	if !failover {
		if p.retries >= p.policy.MaxRetries {
			return 0, err
		}
		delay = p.policy.Delay(p.retries, retryAfterOf(err), rnd)
		if !p.deadline.IsZero() && !now.Add(delay).Before(p.deadline) {
			return 0, err
		}
	}
	cost, ok := p.budget.take(isTimeout(err))
	if !ok {
		return 0, &budgetError{err}
	}
	p.cost = cost
	if !failover {
		p.retries++
		clear(p.tried)
	}
	return delay, nil
}
