package kommo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// MaxWriteBatch is the most entities one write request carries: Kommo
// accepts 250 and recommends at most 50.
const MaxWriteBatch = 50

// TagPatch adds and removes tags by name on one contact (tags_to_add,
// tags_to_delete): the contact's other tags stay. _embedded.tags, which
// replaces the whole set, is never sent. Fields set custom fields in the
// same request.
type TagPatch struct {
	ID     int64
	Add    []string
	Delete []string
	Fields []FieldWrite
}

// FieldWrite sets one custom field of a contact to a text value; an empty
// Value clears the field (values null).
type FieldWrite struct {
	FieldID int64
	Value   string
}

// Note is a service note on a contact (note_type service_message).
type Note struct {
	ContactID int64
	Service   string // who writes it, shown by Kommo
	Text      string
}

// ContactsWithEmail returns the contacts holding the address, found with
// Kommo's search (query=) and kept only when one of their e-mails is the
// address (the search also matches parts of other fields).
func (c *Client) ContactsWithEmail(ctx context.Context, email string) ([]Contact, error) {
	want := strings.ToLower(strings.TrimSpace(email))
	var out []Contact
	err := c.ListContacts(ctx, ListContactsOptions{Query: want}, func(page []Contact) error {
		for _, ct := range page {
			if slices.ContainsFunc(ct.Emails, func(e string) bool { return strings.EqualFold(strings.TrimSpace(e), want) }) {
				out = append(out, ct)
			}
		}
		return nil
	})
	return out, err
}

// PatchTags sends the patches, MaxWriteBatch contacts per PATCH request.
func (c *Client) PatchTags(ctx context.Context, patches []TagPatch) error {
	type tagRef struct {
		Name string `json:"name"`
	}
	type patch struct {
		ID     int64        `json:"id"`
		Add    []tagRef     `json:"tags_to_add,omitempty"`
		Delete []tagRef     `json:"tags_to_delete,omitempty"`
		Fields []fieldValue `json:"custom_fields_values,omitempty"`
	}
	refs := func(names []string) []tagRef {
		out := make([]tagRef, len(names))
		for i, n := range names {
			out[i] = tagRef{n}
		}
		return out
	}
	for chunk := range slices.Chunk(patches, MaxWriteBatch) {
		body := make([]patch, len(chunk))
		for i, p := range chunk {
			body[i] = patch{ID: p.ID, Add: refs(p.Add), Delete: refs(p.Delete), Fields: fieldValues(p.Fields)}
		}
		if err := c.write(ctx, "PATCH", "/api/v4/contacts", body); err != nil {
			return err
		}
	}
	return nil
}

type textValue struct {
	Value string `json:"value"`
}

// fieldValue is one custom_fields_values element; Values nil (JSON null)
// clears the field.
type fieldValue struct {
	FieldID int64       `json:"field_id"`
	Values  []textValue `json:"values"`
}

func fieldValues(writes []FieldWrite) []fieldValue {
	out := make([]fieldValue, len(writes))
	for i, f := range writes {
		out[i].FieldID = f.FieldID
		if f.Value != "" {
			out[i].Values = []textValue{{f.Value}}
		}
	}
	return out
}

// AddNotes adds the notes, MaxWriteBatch per request.
func (c *Client) AddNotes(ctx context.Context, notes []Note) error {
	type params struct {
		Service string `json:"service"`
		Text    string `json:"text"`
	}
	type note struct {
		EntityID int64  `json:"entity_id"`
		NoteType string `json:"note_type"`
		Params   params `json:"params"`
	}
	for chunk := range slices.Chunk(notes, MaxWriteBatch) {
		body := make([]note, len(chunk))
		for i, n := range chunk {
			body[i] = note{EntityID: n.ContactID, NoteType: "service_message", Params: params{n.Service, n.Text}}
		}
		if err := c.write(ctx, "POST", "/api/v4/contacts/notes", body); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) write(ctx context.Context, method, path string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("kommo: %s %s: %w", method, path, err)
	}
	_, err = c.do(ctx, call{method: method, ref: path, body: body, auth: true})
	return err
}
