package spillway

import "context"

// Priority is how important a call is when a downstream is under pressure:
// a load shedder (package shed) refuses the lowest class first. The zero
// value is PriorityDefault, so a call that says nothing is a default call.
// Priorities are ordered: PrioritySheddable < PriorityDefault <
// PriorityCritical.
type Priority int8

// The three classes, from the first shed to the last.
const (
	// PrioritySheddable marks work that may be dropped first: prefetches,
	// batch jobs, retries of background work.
	PrioritySheddable Priority = -1
	// PriorityDefault is every call that carries no priority.
	PriorityDefault Priority = 0
	// PriorityCritical marks work that is refused only when the downstream
	// has no capacity left at all: checkouts, logins, health probes.
	PriorityCritical Priority = 1
)

// String returns "sheddable", "default" or "critical" (the values of the
// gateway's Spillway-Priority header), or "unknown".
func (p Priority) String() string {
	switch p {
	case PrioritySheddable:
		return "sheddable"
	case PriorityDefault:
		return "default"
	case PriorityCritical:
		return "critical"
	}
	return "unknown"
}

// ParsePriority returns the Priority that String spells s as, and false
// (with PriorityDefault) for any other value, empty included. It is exact
// and case-sensitive, like the header's values.
func ParsePriority(s string) (Priority, bool) {
	switch s {
	case "sheddable":
		return PrioritySheddable, true
	case "default":
		return PriorityDefault, true
	case "critical":
		return PriorityCritical, true
	}
	return PriorityDefault, false
}

// priorityKey is the context key of a call's Priority.
type priorityKey struct{}

// WithPriority returns a copy of ctx whose calls have priority p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the priority WithPriority gave ctx, or PriorityDefault.
// It allocates nothing.
func PriorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}
