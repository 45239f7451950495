package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
)

// sandbox drives the emulators through their admin APIs, as a user of
// `make dev` would with curl.
type sandbox struct {
	env    *devenv.Env
	listID int64
}

type adminContact struct {
	ID     int64    `json:"id,omitempty"`
	Type   string   `json:"type,omitempty"`
	Name   string   `json:"name,omitempty"`
	Emails []string `json:"emails"`
	Phones []string `json:"phones"`
}

func (s sandbox) contactsURL() string {
	return s.env.KommoURL + "/_admin/accounts/" + devenv.SandboxSubdomain + "/contacts"
}

func (s sandbox) createContact(t *testing.T, name, email string) int64 {
	t.Helper()
	var out adminContact
	s.send(t, http.MethodPost, s.contactsURL(), adminContact{Name: name, Emails: []string{email}}, &out)
	return out.ID
}

func (s sandbox) updateContact(t *testing.T, id int64, name, email string) {
	t.Helper()
	s.send(t, http.MethodPut, s.contactsURL()+"/"+strconv.FormatInt(id, 10), adminContact{Name: name, Emails: []string{email}}, nil)
}

func (s sandbox) deleteContact(t *testing.T, id int64) {
	t.Helper()
	s.send(t, http.MethodDelete, s.contactsURL()+"/"+strconv.FormatInt(id, 10), nil, nil)
}

func (s sandbox) send(t *testing.T, method, url string, body, out any) {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&buf).Encode(body)
	}
	req, _ := http.NewRequest(method, url, &buf)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: HTTP %d", method, url, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// kommoEmails are the e-mails of Kommo's live persons (companies are not
// synced), sorted.
func (s sandbox) kommoEmails(t *testing.T) []string {
	var contacts []adminContact
	getJSON(t, s.contactsURL(), &contacts)
	seen := map[string]bool{}
	for _, c := range contacts {
		if c.Type == "company" {
			continue
		}
		for _, e := range c.Emails {
			seen[normalize(e)] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// listEmails are the addresses active in the tenant's Unisender list.
func (s sandbox) listEmails(t *testing.T) []string {
	m, err := s.members()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (s sandbox) members() ([]string, error) {
	var members []struct {
		Email      string `json:"email"`
		ListStatus string `json:"list_status"`
	}
	url := fmt.Sprintf("%s/_admin/lists/%d/members", s.env.UnisenderURL, s.listID)
	if err := devenv.SandboxJSON(http.MethodGet, url, nil, &members); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range members {
		if m.ListStatus == "active" {
			seen[m.Email] = true
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }
