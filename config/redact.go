package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// envValue is a value that ${NAME} expanded to while decoding.
type envValue struct{ name, value string }

// minRawSecret is the shortest environment value replaced wherever it
// appears in a message; a shorter one is replaced only where a message
// quotes it whole ("7"), so that a value like "1" does not mangle
// "routes[1]".
const minRawSecret = 4

// lookupEnv is the decoder's env with every non-empty value it returns
// remembered, so that redact can keep them out of messages.
func (d *decoder) lookupEnv(name string) (string, bool) {
	v, ok := d.env(name)
	if ok && v != "" {
		d.expanded = append(d.expanded, envValue{name, v})
	}
	return v, ok
}

// redact replaces, in every error and warning message, the values that
// came from the environment by the ${NAME} that produced them: a message
// (printed by validate, logged by serve, answered by a failed reload) never
// echoes a password or token that the file does not hold itself.
func (d *decoder) redact() {
	if len(d.expanded) == 0 {
		return
	}
	// The longest first: a value that contains another is replaced whole.
	vs := slices.Clone(d.expanded)
	slices.SortFunc(vs, func(a, b envValue) int { return cmp.Compare(len(b.value), len(a.value)) })
	pairs := make([]string, 0, 6*len(vs))
	for _, v := range vs {
		ref := "${" + v.name + "}"
		quoted := strconv.Quote(v.value)
		pairs = append(pairs, quoted, strconv.Quote(ref))
		if inner := quoted[1 : len(quoted)-1]; inner != v.value && len(v.value) >= minRawSecret {
			pairs = append(pairs, inner, ref)
		}
		if len(v.value) >= minRawSecret {
			pairs = append(pairs, v.value, ref)
		}
	}
	r := strings.NewReplacer(pairs...)
	for _, e := range d.errs {
		e.Msg = r.Replace(e.Msg)
	}
	for i := range d.warns {
		d.warns[i].Msg = r.Replace(d.warns[i].Msg)
	}
}
