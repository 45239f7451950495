package kommo

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// v4Contact is a contact as API v4 sends it.
type v4Contact struct {
	ID                 int64     `json:"id"`
	Name               string    `json:"name"`
	FirstName          string    `json:"first_name"`
	LastName           string    `json:"last_name"`
	ResponsibleUserID  int64     `json:"responsible_user_id"`
	CreatedAt          int64     `json:"created_at"`
	UpdatedAt          int64     `json:"updated_at"`
	AccountID          int64     `json:"account_id"`
	CustomFieldsValues []v4Field `json:"custom_fields_values"` // array or null
	Embedded           struct {
		Tags []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"tags"`
		Leads []struct {
			ID int64 `json:"id"`
		} `json:"leads"`
	} `json:"_embedded"`
}

type v4Field struct {
	FieldID   int64     `json:"field_id"`
	FieldName string    `json:"field_name"`
	FieldCode string    `json:"field_code"` // null for user fields
	FieldType string    `json:"field_type"`
	Values    []v4Value `json:"values"`
}

type v4Value struct {
	Value    json.RawMessage `json:"value"` // string, number, bool or object depending on the field type
	EnumID   int64           `json:"enum_id"`
	EnumCode string          `json:"enum_code"`
}

// contactsPage is one HAL page of GET /api/v4/contacts.
type contactsPage struct {
	Page     int       `json:"_page"`
	Links    pageLinks `json:"_links"`
	Embedded struct {
		Contacts []v4Contact `json:"contacts"`
	} `json:"_embedded"`
}

// toContact converts the wire shape to the shared model: every custom field
// is kept, and the EMAIL and PHONE fields also fill Emails and Phones.
func (v v4Contact) toContact() Contact {
	c := Contact{
		ID:                v.ID,
		Type:              ContactTypeContact,
		Name:              v.Name,
		FirstName:         v.FirstName,
		LastName:          v.LastName,
		ResponsibleUserID: v.ResponsibleUserID,
		CreatedAt:         v.CreatedAt,
		UpdatedAt:         v.UpdatedAt,
		AccountID:         v.AccountID,
	}
	for _, f := range v.CustomFieldsValues {
		cf := CustomField{ID: f.FieldID, Name: f.FieldName, Code: f.FieldCode}
		for _, val := range f.Values {
			cf.Values = append(cf.Values, FieldValue{Value: rawText(val.Value), EnumID: val.EnumID, EnumCode: val.EnumCode})
		}
		c.CustomFields = append(c.CustomFields, cf)
	}
	c.DeriveContactPoints()
	for _, t := range v.Embedded.Tags {
		c.Tags = append(c.Tags, t.Name)
	}
	for _, l := range v.Embedded.Leads {
		if l.ID > 0 {
			c.LeadIDs = append(c.LeadIDs, l.ID)
		}
	}
	return c
}

// rawText renders a JSON value as the text a form field would carry:
// strings unquoted, numbers and booleans as written, null as "", objects
// and arrays as compact JSON.
func rawText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	if raw[0] == '{' || raw[0] == '[' {
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			return b.String()
		}
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err == nil || string(raw) == "true" || string(raw) == "false" {
		return string(raw)
	}
	return ""
}

// pageLinks are the HAL links of a page; Next is absent on the last one.
type pageLinks struct {
	Next struct {
		Href string `json:"href"`
	} `json:"next"`
}
