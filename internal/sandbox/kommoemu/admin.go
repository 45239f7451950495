package kommoemu

import (
	"net/http"
	"strconv"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// registerAdmin mounts the admin API, JSON in and out, no authentication:
//
//	GET    /_admin/accounts                          → [Account]
//	POST   /_admin/accounts              {subdomain} → Account
//	POST   /_admin/clients               {client_id, client_secret, redirect_uri}
//	POST   /_admin/accounts/{sub}/codes  {client_id} → {code}
//	POST   /_admin/accounts/{sub}/long-lived-tokens {ttl: "720h"} → {access_token}
//	POST   /_admin/accounts/{sub}/revoke-tokens
//	PUT    /_admin/accounts/{sub}/blocked {blocked}
//	GET    /_admin/accounts/{sub}/contacts           → [AdminContact]
//	POST   /_admin/accounts/{sub}/contacts AdminContact → AdminContact
//	PUT    /_admin/accounts/{sub}/contacts/{id} AdminContact → AdminContact
//	DELETE /_admin/accounts/{sub}/contacts/{id}
//	GET    /_admin/accounts/{sub}/notes         → [Note] (added through the API)
//	POST   /_admin/accounts/{sub}/seed   {n}
//	… pipelines and leads: see registerAdminLeads
//	GET    /_admin/accounts/{sub}/webhooks           → [Webhook]
//	PUT    /_admin/accounts/{sub}/webhooks/disabled {destination, disabled}
//	GET    /_admin/stats → Stats      DELETE /_admin/stats (reset)
//	GET    /_admin/log   → [LogEntry]
//	GET    /_admin/faults → AdminFaults   PUT /_admin/faults AdminFaults   DELETE /_admin/faults
//	POST   /_admin/flush                 (end batch windows now)
//	POST   /_admin/wait-idle {timeout: "5s"}
func (s *Server) registerAdmin(m *http.ServeMux) {
	m.HandleFunc("GET /_admin/accounts", func(w http.ResponseWriter, _ *http.Request) { adminOK(w, s.Accounts()) })
	m.HandleFunc("POST /_admin/accounts", adminDo(func(req struct{ Subdomain string }) (any, error) {
		return s.AddAccount(req.Subdomain)
	}))
	m.HandleFunc("POST /_admin/clients", adminDo(func(req struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		RedirectURI  string `json:"redirect_uri"`
	}) (any, error) {
		return nil, s.RegisterClient(req.ClientID, req.ClientSecret, req.RedirectURI)
	}))
	s.registerAdminAccount(m)
	s.registerAdminContacts(m)
	s.registerAdminLeads(m)
	s.registerAdminRuntime(m)
}

func (s *Server) registerAdminAccount(m *http.ServeMux) {
	m.HandleFunc("POST /_admin/accounts/{sub}/codes", adminDoSub(func(sub string, req struct {
		ClientID string `json:"client_id"`
	}) (any, error) {
		code, err := s.IssueAuthCode(sub, req.ClientID)
		return map[string]string{"code": code}, err
	}))
	m.HandleFunc("POST /_admin/accounts/{sub}/long-lived-tokens", adminDoSub(func(sub string, req struct {
		TTL string `json:"ttl"`
	}) (any, error) {
		ttl, err := time.ParseDuration(req.TTL)
		if err != nil {
			return nil, badRequest("ttl must be a Go duration such as 720h")
		}
		tok, err := s.IssueLongLivedToken(sub, ttl)
		return map[string]string{"access_token": tok}, err
	}))
	m.HandleFunc("POST /_admin/accounts/{sub}/revoke-tokens", adminDoSub(func(sub string, _ struct{}) (any, error) {
		return nil, s.RevokeTokens(sub)
	}))
	m.HandleFunc("PUT /_admin/accounts/{sub}/blocked", adminDoSub(func(sub string, req struct{ Blocked bool }) (any, error) {
		return nil, s.SetBlocked(sub, req.Blocked)
	}))
	m.HandleFunc("GET /_admin/accounts/{sub}/webhooks", func(w http.ResponseWriter, r *http.Request) {
		hooks, err := s.Webhooks(r.PathValue("sub"))
		adminAnswer(w, hooks, err)
	})
	m.HandleFunc("PUT /_admin/accounts/{sub}/webhooks/disabled", adminDoSub(func(sub string, req struct {
		Destination string `json:"destination"`
		Disabled    bool   `json:"disabled"`
	}) (any, error) {
		return nil, s.SetWebhookDisabled(sub, req.Destination, req.Disabled)
	}))
}

func (s *Server) registerAdminContacts(m *http.ServeMux) {
	m.HandleFunc("GET /_admin/accounts/{sub}/contacts", func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.Contacts(r.PathValue("sub"))
		out := make([]AdminContact, len(cs))
		for i, c := range cs {
			out[i] = toAdminContact(c)
		}
		adminAnswer(w, out, err)
	})
	m.HandleFunc("POST /_admin/accounts/{sub}/contacts", adminDoSub(func(sub string, req AdminContact) (any, error) {
		c, err := s.CreateContact(sub, req.toContact())
		return toAdminContact(c), err
	}))
	m.HandleFunc("PUT /_admin/accounts/{sub}/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		var req AdminContact
		if !adminDecode(w, r, &req) {
			return
		}
		c := req.toContact()
		c.ID, _ = strconv.ParseInt(r.PathValue("id"), 10, 64)
		c, err := s.UpdateContact(r.PathValue("sub"), c)
		adminAnswer(w, toAdminContact(c), err)
	})
	m.HandleFunc("GET /_admin/accounts/{sub}/notes", func(w http.ResponseWriter, r *http.Request) {
		notes, err := s.Notes(r.PathValue("sub"))
		adminAnswer(w, notes, err)
	})
	m.HandleFunc("DELETE /_admin/accounts/{sub}/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		adminAnswer(w, nil, s.DeleteContact(r.PathValue("sub"), id))
	})
	m.HandleFunc("POST /_admin/accounts/{sub}/seed", adminDoSub(func(sub string, req struct{ N int }) (any, error) {
		return nil, s.SeedContacts(sub, req.N)
	}))
}

func (s *Server) registerAdminRuntime(m *http.ServeMux) {
	m.HandleFunc("GET /_admin/stats", func(w http.ResponseWriter, _ *http.Request) { adminOK(w, s.Stats()) })
	m.HandleFunc("DELETE /_admin/stats", func(w http.ResponseWriter, _ *http.Request) { s.ResetStats(); adminOK(w, nil) })
	m.HandleFunc("GET /_admin/log", func(w http.ResponseWriter, _ *http.Request) { adminOK(w, s.RequestLog()) })
	m.HandleFunc("GET /_admin/faults", func(w http.ResponseWriter, _ *http.Request) { adminOK(w, toAdminFaults(s.Faults())) })
	m.HandleFunc("PUT /_admin/faults", adminDo(func(req AdminFaults) (any, error) {
		f, err := req.settings()
		if err == nil {
			s.SetFaults(f)
		}
		return nil, err
	}))
	m.HandleFunc("DELETE /_admin/faults", func(w http.ResponseWriter, _ *http.Request) { s.ClearFaults(); adminOK(w, nil) })
	m.HandleFunc("POST /_admin/flush", func(w http.ResponseWriter, _ *http.Request) { s.Flush(); adminOK(w, nil) })
	m.HandleFunc("POST /_admin/wait-idle", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Timeout string }
		if !adminDecode(w, r, &req) {
			return
		}
		d, err := time.ParseDuration(req.Timeout)
		if err != nil {
			d = 10 * time.Second
		}
		ctx, cancel := contextWithTimeout(r, d)
		defer cancel()
		adminAnswer(w, nil, s.WaitIdle(ctx))
	})
}

// AdminContact is a contact in the admin API.
type AdminContact struct {
	ID                int64              `json:"id,omitempty"`
	Type              kommo.ContactType  `json:"type,omitempty"`
	Name              string             `json:"name,omitempty"`
	FirstName         string             `json:"first_name,omitempty"`
	LastName          string             `json:"last_name,omitempty"`
	Emails            []string           `json:"emails"`
	Phones            []string           `json:"phones"`
	Tags              []string           `json:"tags,omitempty"`
	CustomFields      []AdminCustomField `json:"custom_fields,omitempty"`
	ResponsibleUserID int64              `json:"responsible_user_id,omitempty"`
	CreatedAt         int64              `json:"created_at,omitempty"`
	UpdatedAt         int64              `json:"updated_at,omitempty"`
}

// AdminCustomField is a custom field in the admin API.
type AdminCustomField struct {
	ID     int64             `json:"id,omitempty"`
	Name   string            `json:"name,omitempty"`
	Code   string            `json:"code,omitempty"`
	Values []AdminFieldValue `json:"values"`
}

// AdminFieldValue is a custom field value in the admin API.
type AdminFieldValue struct {
	Value    string `json:"value"`
	EnumID   int64  `json:"enum_id,omitempty"`
	EnumCode string `json:"enum_code,omitempty"`
}

func (a AdminContact) toContact() kommo.Contact {
	c := kommo.Contact{ID: a.ID, Type: a.Type, Name: a.Name, FirstName: a.FirstName, LastName: a.LastName,
		Emails: a.Emails, Phones: a.Phones, Tags: a.Tags, ResponsibleUserID: a.ResponsibleUserID}
	for _, f := range a.CustomFields {
		cf := kommo.CustomField{ID: f.ID, Name: f.Name, Code: f.Code}
		for _, v := range f.Values {
			cf.Values = append(cf.Values, kommo.FieldValue(v))
		}
		c.CustomFields = append(c.CustomFields, cf)
	}
	return c
}

func toAdminContact(c kommo.Contact) AdminContact {
	a := AdminContact{ID: c.ID, Type: c.Type, Name: c.Name, FirstName: c.FirstName, LastName: c.LastName,
		Emails: c.Emails, Phones: c.Phones, Tags: c.Tags, ResponsibleUserID: c.ResponsibleUserID,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	for _, f := range c.CustomFields {
		af := AdminCustomField{ID: f.ID, Name: f.Name, Code: f.Code, Values: []AdminFieldValue{}}
		for _, v := range f.Values {
			af.Values = append(af.Values, AdminFieldValue(v))
		}
		a.CustomFields = append(a.CustomFields, af)
	}
	return a
}

// AdminFaults are the fault knobs in the admin API; latency is a Go
// duration string ("150ms").
type AdminFaults struct {
	Latency      string  `json:"latency"`
	ErrorRate    float64 `json:"error_rate"`
	Pending429   int     `json:"pending_429"`
	Pending5xx   int     `json:"pending_5xx"`
	PendingHangs int     `json:"pending_hangs"`
}

func (f AdminFaults) settings() (FaultSettings, error) {
	var d time.Duration
	if f.Latency != "" {
		var err error
		if d, err = time.ParseDuration(f.Latency); err != nil {
			return FaultSettings{}, badRequest("latency must be a Go duration such as 150ms")
		}
	}
	return FaultSettings{Latency: d, ErrorRate: f.ErrorRate, Pending429: f.Pending429,
		Pending5xx: f.Pending5xx, PendingHangs: f.PendingHangs}, nil
}

func toAdminFaults(f FaultSettings) AdminFaults {
	return AdminFaults{Latency: f.Latency.String(), ErrorRate: f.ErrorRate, Pending429: f.Pending429,
		Pending5xx: f.Pending5xx, PendingHangs: f.PendingHangs}
}
