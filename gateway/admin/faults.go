package admin

import (
	"errors"
	"net/http"

	"github.com/spillway-dev/spillway/gateway"
)

// The runtime faults (gateway/fault.go): listed, added with a mandatory
// expiry, removed one by one or all at once (the kill switch). Adding and
// removing need a token of the admin role, as every mutating call; an
// unknown route answers 404 like the other runtime changes.

func (a *api) faults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": a.g.Faults()})
}

// addFault adds a fault: POST /api/v1/faults {"route":"catalog",
// "delay":{"percent":50,"duration":"2s"},"abort":{"percent":10,"status":503},
// "expires_in":"10m"}; 201 with the fault, its id and expires_at.
func (a *api) addFault(w http.ResponseWriter, r *http.Request) {
	var s gateway.FaultSpec
	if !decodeBody(w, r, &s) {
		return
	}
	f, err := a.g.AddFault(actor(r), s)
	if errors.Is(err, gateway.ErrTooManyFaults) {
		writeError(w, http.StatusTooManyRequests, err.Error())
		return
	}
	if err != nil {
		answerChange(w, nil, err)
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

// removeFault removes one: DELETE /api/v1/faults/{id}; 404 when no fault
// of that id is in force.
func (a *api) removeFault(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.g.RemoveFault(actor(r), id); err != nil {
		answerChange(w, nil, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": id})
}

// clearFaults is the kill switch: DELETE /api/v1/faults removes every
// runtime fault and answers {"cleared":N}.
func (a *api) clearFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{"cleared": a.g.ClearFaults(actor(r))})
}
