package unisenderemu

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// AdminKeyHeader carries the API key of the account an admin request is
// about, so that the key stays out of URLs.
const AdminKeyHeader = "X-Unisender-Api-Key"

// registerAdmin serves the admin API as JSON under /_admin/:
//
//	POST   /_admin/keys                                {"key":"…"}
//	DELETE /_admin/keys                                (key in header)
//	GET    /_admin/lists | /_admin/fields | /_admin/contacts
//	GET    /_admin/lists/{id}/members
//	GET    /_admin/contacts/{email}
//	PUT    /_admin/contacts/{email}/status             {"status":"unsubscribed"}
//	PUT    /_admin/contacts/{email}/lists/{id}/status  {"status":"unsubscribed"}
//	GET    /_admin/stats, DELETE /_admin/stats
//	GET    /_admin/faults, PUT /_admin/faults          {"latency":"50ms","transient_error_rate":0.1,"transient_mode":"mixed"}
//	DELETE /_admin/faults
//	POST   /_admin/faults/errors                       {"n":2,"code":"retry_later","message":"","http_status":0}
//	POST   /_admin/faults/hangs                        {"n":1}
//
// Account-scoped routes read the key from the AdminKeyHeader header.
func (s *Server) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /_admin/keys", s.adminAddKey)
	mux.HandleFunc("DELETE /_admin/keys", func(w http.ResponseWriter, r *http.Request) {
		s.RemoveAPIKey(r.Header.Get(AdminKeyHeader))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_admin/lists", s.withAccount(func(key string, _ *http.Request) (any, error) { return s.Lists(key), nil }))
	mux.HandleFunc("GET /_admin/fields", s.withAccount(func(key string, _ *http.Request) (any, error) { return s.Fields(key), nil }))
	mux.HandleFunc("GET /_admin/contacts", s.withAccount(func(key string, _ *http.Request) (any, error) { return s.Contacts(key), nil }))
	mux.HandleFunc("GET /_admin/lists/{id}/members", s.withAccount(s.adminMembers))
	mux.HandleFunc("GET /_admin/contacts/{email}", s.withAccount(s.adminContactView))
	mux.HandleFunc("PUT /_admin/contacts/{email}/status", s.withAccount(s.adminSetStatus))
	mux.HandleFunc("PUT /_admin/contacts/{email}/lists/{id}/status", s.withAccount(s.adminSetListStatus))
	mux.HandleFunc("PUT /_admin/contacts/{email}/availability", s.withAccount(s.adminSetAvailability))
	mux.HandleFunc("PUT /_admin/statuses", s.withAccount(s.adminSetStatuses))
	mux.HandleFunc("GET /_admin/hook", s.withAccount(func(key string, _ *http.Request) (any, error) {
		h, ok := s.Hook(key)
		if !ok {
			return nil, ErrNoHook
		}
		return h, nil
	}))
	mux.HandleFunc("PUT /_admin/hook/stopped", s.withAccount(func(key string, _ *http.Request) (any, error) {
		s.StopHook(key)
		return nil, nil
	}))
	mux.HandleFunc("GET /_admin/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	mux.HandleFunc("DELETE /_admin/stats", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_admin/faults", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, faultsView(s.Faults())) })
	mux.HandleFunc("PUT /_admin/faults", s.adminSetFaults)
	mux.HandleFunc("DELETE /_admin/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_admin/faults/errors", s.adminForceErrors)
	mux.HandleFunc("POST /_admin/faults/hangs", s.adminHang)
}

type adminError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeAdminError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrUnknownContact) || errors.Is(err, ErrUnknownList) || errors.Is(err, ErrNoHook) {
		status = http.StatusNotFound
	}
	writeJSON(w, status, adminError{Error: err.Error()})
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("malformed JSON body: " + err.Error())
	}
	return nil
}

// withAccount resolves the account key from the header and answers 404 for
// an unknown one.
func (s *Server) withAccount(h func(key string, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(AdminKeyHeader)
		s.mu.Lock()
		known := s.accounts[key] != nil
		s.mu.Unlock()
		if !known {
			writeAdminError(w, ErrUnknownKey)
			return
		}
		v, err := h(key, r)
		if err != nil {
			writeAdminError(w, err)
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) adminAddKey(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Key string `json:"key"`
	}
	if err := decodeBody(r, &body); err != nil || body.Key == "" {
		writeAdminError(w, errors.New(`want {"key":"…"}`))
		return
	}
	s.AddAPIKey(body.Key)
	w.WriteHeader(http.StatusNoContent)
}

func pathListID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, errors.New("list id must be an integer")
	}
	return id, nil
}

func (s *Server) adminMembers(key string, r *http.Request) (any, error) {
	id, err := pathListID(r)
	if err != nil {
		return nil, err
	}
	members := s.ListMembers(key, id)
	if members == nil {
		members = []Member{}
	}
	return members, nil
}

func (s *Server) adminContactView(key string, r *http.Request) (any, error) {
	c, ok := s.Contact(key, r.PathValue("email"))
	if !ok {
		return nil, ErrUnknownContact
	}
	return c, nil
}

type statusBody struct {
	Status string `json:"status"`
}

func (s *Server) adminSetStatus(key string, r *http.Request) (any, error) {
	var body statusBody
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	return nil, s.SetContactStatus(key, r.PathValue("email"), body.Status)
}

func (s *Server) adminSetListStatus(key string, r *http.Request) (any, error) {
	id, err := pathListID(r)
	if err != nil {
		return nil, err
	}
	var body statusBody
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	return nil, s.SetListStatus(key, r.PathValue("email"), id, body.Status)
}

// faultsJSON is the admin form of the fault knobs; latency is a Go duration
// string ("50ms").
type faultsJSON struct {
	Latency            string        `json:"latency"`
	TransientErrorRate float64       `json:"transient_error_rate"`
	TransientMode      TransientMode `json:"transient_mode"`
	PendingForced      []ForcedError `json:"pending_forced,omitempty"`
	PendingHangs       int           `json:"pending_hangs,omitempty"`
}

func faultsView(f FaultSettings) faultsJSON {
	return faultsJSON{
		Latency: f.Latency.String(), TransientErrorRate: f.TransientErrorRate, TransientMode: f.TransientMode,
		PendingForced: f.PendingForced, PendingHangs: f.PendingHangs,
	}
}

func (s *Server) adminSetFaults(w http.ResponseWriter, r *http.Request) {
	var body faultsJSON
	if err := decodeBody(r, &body); err != nil {
		writeAdminError(w, err)
		return
	}
	latency := time.Duration(0)
	if body.Latency != "" {
		d, err := time.ParseDuration(body.Latency)
		if err != nil || d < 0 {
			writeAdminError(w, errors.New("latency must be a duration like 50ms"))
			return
		}
		latency = d
	}
	if body.TransientErrorRate < 0 || body.TransientErrorRate > 1 {
		writeAdminError(w, errors.New("transient_error_rate must be within 0..1"))
		return
	}
	s.SetLatency(latency)
	s.SetTransientErrorRate(body.TransientErrorRate, body.TransientMode)
	writeJSON(w, http.StatusOK, faultsView(s.Faults()))
}

func (s *Server) adminForceErrors(w http.ResponseWriter, r *http.Request) {
	var body struct {
		N int `json:"n"`
		ForcedError
	}
	if err := decodeBody(r, &body); err != nil {
		writeAdminError(w, err)
		return
	}
	if body.N <= 0 || (body.Code == "" && body.HTTPStatus == 0) {
		writeAdminError(w, errors.New("want n > 0 and a code or an http_status"))
		return
	}
	s.ForceErrors(body.N, body.ForcedError)
	writeJSON(w, http.StatusOK, faultsView(s.Faults()))
}

func (s *Server) adminHang(w http.ResponseWriter, r *http.Request) {
	var body struct {
		N int `json:"n"`
	}
	if err := decodeBody(r, &body); err != nil || body.N <= 0 {
		writeAdminError(w, errors.New(`want {"n": <count > 0>}`))
		return
	}
	s.HangNext(body.N)
	writeJSON(w, http.StatusOK, faultsView(s.Faults()))
}
