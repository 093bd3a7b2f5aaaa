package spillway

// Hooks is an Observer made of one optional function per kind of event, for
// code that wants to act on one decision ("when the breaker opens, page")
// without switching on Event.Kind. Pass it wherever an Observer goes (a
// policy's Config.Observer, Policies.Observer), alone or in Observers. A nil
// field is skipped; the functions run on the caller's goroutine, as every
// Observer does, so they must not block.
type Hooks struct {
	// OnAttempt: an attempt finished (EventAttempt).
	OnAttempt func(Event)
	// OnRetry: a retry is scheduled (EventRetry).
	OnRetry func(Event)
	// OnTransition: a breaker changed state (EventTransition), whatever the states.
	OnTransition func(Event)
	// OnOpen: a breaker opened (a transition to "open" or "forced_open").
	OnOpen func(Event)
	// OnHalfOpen: a breaker turned half-open.
	OnHalfOpen func(Event)
	// OnClose: a breaker closed.
	OnClose func(Event)
	// OnRejection: a policy refused a call (EventRejection), whatever the reason.
	OnRejection func(Event)
	// OnFull: a bulkhead refused a call (a rejection with ReasonBulkheadFull).
	OnFull func(Event)
	// OnBudgetExhausted: the retry budget refused a retry.
	OnBudgetExhausted func(Event)
	// OnFallback: a fallback served (EventFallback).
	OnFallback func(Event)
	// OnTimeout: a timeout cut a call short (EventTimeout).
	OnTimeout func(Event)
	// OnHedge: a hedging policy sent a hedge (EventHedge).
	OnHedge func(Event)
	// OnHedgeWon: a hedge answered first (EventHedgeWon).
	OnHedgeWon func(Event)
}

// Observe calls the hooks that e's kind (and state or reason) selects: the
// general one first (OnTransition, OnRejection), then the specific one.
func (h *Hooks) Observe(e Event) {
	switch e.Kind {
	case EventAttempt:
		fire(h.OnAttempt, e)
	case EventRetry:
		fire(h.OnRetry, e)
	case EventTransition:
		fire(h.OnTransition, e)
		switch e.To {
		case "open", "forced_open":
			fire(h.OnOpen, e)
		case "half_open":
			fire(h.OnHalfOpen, e)
		case "closed":
			fire(h.OnClose, e)
		}
	case EventRejection:
		fire(h.OnRejection, e)
		switch e.Reason {
		case ReasonBulkheadFull:
			fire(h.OnFull, e)
		case ReasonBudgetExhausted:
			fire(h.OnBudgetExhausted, e)
		}
	case EventFallback:
		fire(h.OnFallback, e)
	case EventTimeout:
		fire(h.OnTimeout, e)
	case EventHedge:
		fire(h.OnHedge, e)
	case EventHedgeWon:
		fire(h.OnHedgeWon, e)
	}
}

func fire(f func(Event), e Event) {
	if f != nil {
		f(e)
	}
}
