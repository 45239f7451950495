package kommoemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// MaxWriteEntities is the most entities one add/update request may carry
// (Kommo: "Limit 250 per page", 422).
const MaxWriteEntities = 250

// Note is a note added to a contact through the API.
type Note struct {
	ID        int64  `json:"id"`
	ContactID int64  `json:"entity_id"`
	Type      string `json:"note_type"`
	Service   string `json:"service,omitempty"`
	Text      string `json:"text"`
	CreatedAt int64  `json:"created_at"`
}

type namedTag struct {
	Name string `json:"name"`
}

// contactPatch is one element of PATCH /api/v4/contacts.
type contactPatch struct {
	ID           int64      `json:"id"`
	TagsToAdd    []namedTag `json:"tags_to_add"`
	TagsToDelete []namedTag `json:"tags_to_delete"`
	Embedded     *struct {
		Tags []namedTag `json:"tags"`
	} `json:"_embedded"`
	CustomFieldsValues []struct {
		FieldID int64 `json:"field_id"`
		Values  []struct {
			Value string `json:"value"`
		} `json:"values"`
	} `json:"custom_fields_values"`
}

// servePatchContacts is PATCH /api/v4/contacts: tags_to_add and
// tags_to_delete change only the named tags; _embedded.tags replaces the
// whole set and, when sent too, wins (tags_to_* are ignored), as Kommo
// does; custom_fields_values set or (values null) clear a field. Each
// changed contact gets a new updated_at and its update_contact webhook.
func (s *Server) servePatchContacts(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	var patches []contactPatch
	if !decodeWrite(w, r, &patches) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range patches {
		if r.acct.contacts[p.ID] == nil {
			writeValidation(w, validationError{Path: strconv.Itoa(i) + ".id", Detail: fmt.Sprintf("contact %d not found", p.ID)})
			return
		}
		for j, f := range p.CustomFieldsValues {
			if !r.acct.hasField(f.FieldID) {
				writeValidation(w, validationError{Path: fmt.Sprintf("%d.custom_fields_values.%d.field_id", i, j), Detail: fmt.Sprintf("field %d not found", f.FieldID)})
				return
			}
		}
	}
	out := make([]map[string]any, 0, len(patches))
	for i, p := range patches {
		c := cloneContact(*r.acct.contacts[p.ID])
		p.apply(&c)
		c.UpdatedAt = max(s.now().Unix(), c.UpdatedAt+1)
		s.normalize(r.acct, &c)
		r.acct.store(&c)
		s.enqueue(r.acct, kommo.ActionUpdate, c)
		out = append(out, map[string]any{"id": c.ID, "updated_at": c.UpdatedAt, "request_id": strconv.Itoa(i)})
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{"_embedded": map[string]any{"contacts": out}})
}

func (p contactPatch) apply(c *kommo.Contact) {
	if p.Embedded != nil && p.Embedded.Tags != nil {
		c.Tags = c.Tags[:0]
		for _, t := range p.Embedded.Tags {
			c.Tags = append(c.Tags, t.Name)
		}
	} else {
		for _, t := range p.TagsToAdd {
			if !slices.Contains(c.Tags, t.Name) {
				c.Tags = append(c.Tags, t.Name)
			}
		}
		for _, t := range p.TagsToDelete {
			c.Tags = slices.DeleteFunc(c.Tags, func(n string) bool { return n == t.Name })
		}
	}
	for _, f := range p.CustomFieldsValues {
		c.CustomFields = slices.DeleteFunc(c.CustomFields, func(cf kommo.CustomField) bool { return cf.ID == f.FieldID })
		if len(f.Values) == 0 {
			continue
		}
		cf := kommo.CustomField{ID: f.FieldID}
		for _, v := range f.Values {
			cf.Values = append(cf.Values, kommo.FieldValue{Value: v.Value})
		}
		c.CustomFields = append(c.CustomFields, cf)
	}
}

// noteRequest is one element of POST /api/v4/contacts/notes.
type noteRequest struct {
	EntityID int64  `json:"entity_id"`
	NoteType string `json:"note_type"`
	Params   struct {
		Text    string `json:"text"`
		Service string `json:"service"`
	} `json:"params"`
}

// serveAddNotes is POST /api/v4/contacts/notes: notes of type common or
// service_message on existing contacts. A note changes no contact.
func (s *Server) serveAddNotes(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	var reqs []noteRequest
	if !decodeWrite(w, r, &reqs) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range reqs {
		switch {
		case r.acct.contacts[n.EntityID] == nil:
			writeValidation(w, validationError{Path: strconv.Itoa(i) + ".entity_id", Detail: fmt.Sprintf("contact %d not found", n.EntityID)})
			return
		case n.NoteType != "common" && n.NoteType != "service_message":
			writeValidation(w, validationError{Path: strconv.Itoa(i) + ".note_type", Detail: "unsupported note type"})
			return
		case n.Params.Text == "" || (n.NoteType == "service_message" && n.Params.Service == ""):
			writeValidation(w, validationError{Path: strconv.Itoa(i) + ".params", Detail: "text (and service for a service_message) is required"})
			return
		}
	}
	out := make([]map[string]any, 0, len(reqs))
	for i, n := range reqs {
		note := Note{ID: s.newID(), ContactID: n.EntityID, Type: n.NoteType, Service: n.Params.Service, Text: n.Params.Text, CreatedAt: s.now().Unix()}
		r.acct.notes = append(r.acct.notes, note)
		out = append(out, map[string]any{"id": note.ID, "entity_id": note.ContactID, "request_id": strconv.Itoa(i)})
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{"_embedded": map[string]any{"notes": out}})
}

// decodeWrite reads a JSON array of 1 to MaxWriteEntities entities.
func decodeWrite[T any](w http.ResponseWriter, r *request, dst *[]T) bool {
	if err := json.NewDecoder(r.Body).Decode(dst); err != nil {
		writeValidation(w, validationError{Path: "(body)", Detail: "body must be a JSON array"})
		return false
	}
	if len(*dst) > MaxWriteEntities {
		writeProblem(w, http.StatusUnprocessableEntity, "Unprocessable Entity", "Limit 250 per page", "")
		return false
	}
	if len(*dst) == 0 {
		writeValidation(w, validationError{Path: "(body)", Detail: "no entities"})
		return false
	}
	return true
}

// Notes returns the notes of the account's contacts, oldest first.
func (s *Server) Notes(subdomain string) ([]Note, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return nil, err
	}
	return slices.Clone(a.notes), nil
}
