// Package timeout bounds how long a call may take, through its context.
//
// A [Timeout] derives a context whose deadline is its Duration from now
// (context.WithTimeoutCause), runs the call with it and, when the call
// fails because that deadline passed, turns the failure into a
// *spillway.Error with Reason [spillway.ReasonDeadlineExceeded] that wraps
// [ErrTimeout] and the call's own error. The same Timeout serves as the
// per-attempt or the total timeout of a spillway.Pipeline (it implements
// spillway.Timeouter).
//
// The timeout is cooperative: nothing interrupts a call that ignores its
// context. The function must honour ctx (pass it to the network, select on
// ctx.Done()); Run returns only when the function returns, possibly after
// the deadline. No goroutine is started per call; the standard library's
// context timer cancels the context when the deadline passes.
//
// Our timeout and the caller's deadline are told apart by the context's
// cause: when the caller's context ends first (an earlier deadline or a
// cancellation), the caller's error is returned unchanged, so a caller that
// gave up is never reported as a slow downstream.
//
// A call that returns its context's cause (net/http does, inside a
// *url.Error) gets an error that says "timeout exceeded" once: a
// *spillway.Error whose Cause already reads the same prints only the cause.
//
// A Timeout is safe for concurrent use; its Duration, and only it, can be
// changed at run time with SetDuration.
package timeout

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// policyName is the Policy of this package's errors and events.
const policyName = "timeout"

// timeoutError is ErrTimeout's type. It matches context.DeadlineExceeded so
// that a timeout error answers errors.Is(err, context.DeadlineExceeded)
// however it is wrapped, as a context deadline does.
type timeoutError struct{}

func (*timeoutError) Error() string { return "timeout exceeded" }

// Is reports whether target is context.DeadlineExceeded.
func (*timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Timeout reports true, like context.DeadlineExceeded (net.Error's convention).
func (*timeoutError) Timeout() bool { return true }

// ErrTimeout is the sentinel of the errors a Timeout returns:
// errors.Is(err, ErrTimeout) tells our timeout from the caller's deadline,
// and errors.Is(ErrTimeout, context.DeadlineExceeded) is true, so code that
// only knows about context deadlines still recognises it.
var ErrTimeout error = &timeoutError{}

// Config configures a Timeout. Duration is required.
type Config struct {
	// Name identifies the timeout in errors and events. Default "".
	Name string
	// Duration is the time limit, counted from Start. Required, > 0.
	Duration time.Duration
	// Observer receives an EventTimeout each time the limit cuts a call
	// short. Default nil (no events). A spillway.Pipeline's Observer
	// receives them too, without this field (Timeout.AttachObserver).
	Observer spillway.Observer
}

// Timeout bounds calls to a Duration through their context. Create one with
// New; Run and Do are what most callers want, Start and Finish are the two
// halves of Run for a caller (such as spillway.Pipeline) that manages the
// context itself.
type Timeout struct {
	d atomic.Int64 // time.Duration
	// obs is Config.Observer and the observers attached since
	// (AttachObserver).
	obs spillway.ObserverSet
	// cause is the context cause of every context this Timeout derives. Its
	// identity is how Finish recognises our deadline, and it is a complete
	// timeout error itself (with no Cause), because code that reads
	// context.Cause (spillway.Sleep, a pipeline) hands it on as an error.
	cause *spillway.Error
}

var _ spillway.Timeouter = (*Timeout)(nil)

// New returns a Timeout configured by cfg, or an error naming the invalid field.
func New(cfg Config) (*Timeout, error) {
	if err := validDuration(cfg.Duration); err != nil {
		return nil, err
	}
	t := &Timeout{
		cause: &spillway.Error{
			Code:   spillway.ReasonDeadlineExceeded,
			Policy: policyName,
			Name:   cfg.Name,
			Err:    ErrTimeout,
		},
	}
	t.d.Store(int64(cfg.Duration))
	t.obs.SetOwn(cfg.Observer)
	return t, nil
}

// MustNew is like New but panics if cfg is invalid.
func MustNew(cfg Config) *Timeout {
	t, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return t
}

func validDuration(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("timeout: Duration must be > 0, got %v", d)
	}
	return nil
}

// Duration returns the current time limit.
func (t *Timeout) Duration() time.Duration { return time.Duration(t.d.Load()) }

// SetDuration changes the time limit of the calls that start from now on;
// calls already running keep the deadline they started with. It returns an
// error, and changes nothing, if d <= 0.
func (t *Timeout) SetDuration(d time.Duration) error {
	if err := validDuration(d); err != nil {
		return err
	}
	t.d.Store(int64(d))
	return nil
}

// Name returns the timeout's name.
func (t *Timeout) Name() string { return t.cause.Name }

// AttachObserver makes the timeout report the calls it cuts short to o
// too, besides Config.Observer, for the rest of its life
// (spillway.ObserverAttacher: a pipeline attaches its Observer); o gets
// each event once even when it is also Config.Observer.
func (t *Timeout) AttachObserver(o spillway.Observer) { t.obs.Attach(o) }

// Start derives a context that ends after the current Duration, or earlier
// when ctx ends. The caller must call the returned CancelFunc, and should
// pass the call's error through Finish with the derived context.
func (t *Timeout) Start(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, t.Duration(), t.cause)
}

// Finish turns the error of a call that ran under ctx (a context from Start)
// into the error the call ends with:
//   - nil stays nil, even past the deadline: the call made it;
//   - when this Timeout's deadline ended ctx, the result is a
//     *spillway.Error{Code: ReasonDeadlineExceeded, Policy: "timeout",
//     Err: ErrTimeout, Cause: err}, and an EventTimeout is reported;
//   - any other error, including the caller's own deadline or
//     cancellation, is returned unchanged.
//
// Finish is idempotent: an error that already is this Timeout's error (from
// an earlier Finish, or the context cause that spillway.Sleep returned) is
// returned as it is. Each call that finds ctx ended by this Timeout reports
// one event. Two Timeouts with the same Name cannot be told apart here, so
// give nested timeouts distinct names.
func (t *Timeout) Finish(ctx context.Context, err error) error {
	if err == nil || context.Cause(ctx) != error(t.cause) {
		return err
	}
	t.report(ctx)
	if t.owns(err) {
		return err
	}
	return &spillway.Error{
		Code:   t.cause.Code,
		Policy: policyName,
		Name:   t.cause.Name,
		Err:    ErrTimeout,
		Cause:  err,
	}
}

// owns reports whether err is this Timeout's error: its context cause, a
// copy of it with a Cause attached (spillway.Pipeline makes one when the
// deadline ends a backoff), or an error Finish returned.
func (t *Timeout) owns(err error) bool {
	e, ok := err.(*spillway.Error)
	return ok && e.Err == ErrTimeout && e.Policy == policyName && e.Name == t.cause.Name
}

// report tells the Observer that the limit cut a call short. The limit
// reported is the current one: a SetDuration since Start is not seen.
func (t *Timeout) report(ctx context.Context) {
	if o := t.obs.Load(); o != nil {
		o.Observe(spillway.Event{Kind: spillway.EventTimeout, Context: ctx, Policy: policyName, Name: t.cause.Name,
			Duration: t.Duration()})
	}
}

// Run calls fn with a context bounded by the Timeout and returns fn's error
// as Finish sees it. fn must honour its context: Run does not return before
// fn does.
func (t *Timeout) Run(ctx context.Context, fn func(context.Context) error) error {
	tctx, cancel := t.Start(ctx)
	defer cancel()
	return t.Finish(tctx, fn(tctx))
}

// Do is Run for a function that returns a value: it returns fn's value and
// fn's error as Finish sees it.
func Do[T any](ctx context.Context, t *Timeout, fn func(context.Context) (T, error)) (T, error) {
	tctx, cancel := t.Start(ctx)
	defer cancel()
	v, err := fn(tctx)
	return v, t.Finish(tctx, err)
}
