package config

import (
	"fmt"
	"maps"
)

// PatchUpstream returns a copy of c in which the upstream named name has
// the keys that patch writes overlaid on its settings: patch is a mapping
// of an upstream's keys, as written under upstreams.NAME: in the file (in
// YAML or JSON, which is YAML), like {"bulkhead":{"max_concurrent":50}}.
// What patch does not write keeps its value. The keys are decoded and the
// upstream validated as Parse does: the error is an [Errors] whose paths
// are $.upstreams.NAME.KEY, positions in patch. c is not changed; the copy
// shares everything but that upstream with c.
//
// A route whose timeout the file left to the upstream's timeouts.total
// keeps the total it was resolved to.
func (c *Config) PatchUpstream(name string, patch []byte) (*Config, error) {
	old, ok := c.Upstreams[name]
	if !ok {
		return nil, fmt.Errorf("no upstream %q", name)
	}
	// No environment: a ${VAR} in a patch is refused, not expanded from the
	// gateway's environment.
	d := newDecoder("patch", nil)
	root := d.parse(patch)
	u := old.clone()
	if d.errs == nil {
		d.upstream(&u, decodeAs[upstreamYAML](d, root, "$.upstreams."+name))
		d.validateUpstream(&u)
	}
	if d.errs != nil {
		return nil, sortErrors(d.errs)
	}
	out := *c
	out.Upstreams = maps.Clone(c.Upstreams)
	out.Upstreams[name] = &u
	return &out, nil
}
