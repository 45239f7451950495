package kommo

import "strings"

// ContactType tells a person from a company. Kommo delivers both under
// "contacts" (webhooks) and the sync must not treat a company as a person.
type ContactType string

// The contact types Kommo uses.
const (
	ContactTypeContact ContactType = "contact"
	ContactTypeCompany ContactType = "company"
)

// Field codes of the system fields that hold e-mail addresses and phone
// numbers. Kommo identifies them by code, never by name or position.
const (
	FieldCodeEmail = "EMAIL"
	FieldCodePhone = "PHONE"
)

// Contact is one Kommo contact or company, as decoded from the v4 API or from
// a webhook. Both sources fill the same model so the sync treats them alike.
type Contact struct {
	ID        int64
	Type      ContactType
	Name      string
	FirstName string
	LastName  string
	// Emails and Phones are derived from CustomFields (codes EMAIL and PHONE):
	// every value in field order then value order, trimmed, empty ones
	// dropped, otherwise as given (no case folding, no de-duplication).
	Emails            []string
	Phones            []string
	Tags              []string // tag names
	CustomFields      []CustomField
	ResponsibleUserID int64
	// LeadIDs are the contact's leads, listed only when asked for
	// (ListContactsOptions.WithLeads); Leads are those leads with their
	// stage, filled by whoever reads them (package segment).
	LeadIDs   []int64
	Leads     []Lead
	CreatedAt int64 // unix seconds
	UpdatedAt int64 // unix seconds
	AccountID int64
}

// CustomField is one custom (or system) field of a contact with its values.
type CustomField struct {
	ID     int64
	Name   string
	Code   string // e.g. EMAIL, PHONE; empty for user-defined fields
	Values []FieldValue
}

// FieldValue is one value of a custom field. EnumID/EnumCode are set for
// fields with a fixed choice (e.g. WORK/PRIV for e-mails); webhooks carry only
// the numeric enum id.
type FieldValue struct {
	Value    string
	EnumID   int64
	EnumCode string
}

// IsCompany reports whether the contact is a company rather than a person.
func (c *Contact) IsCompany() bool { return c.Type == ContactTypeCompany }

// DeriveContactPoints sets Emails and Phones from CustomFields. Decoders call
// it after filling CustomFields so the two views never disagree.
func (c *Contact) DeriveContactPoints() {
	c.Emails = valuesWithCode(c.CustomFields, FieldCodeEmail)
	c.Phones = valuesWithCode(c.CustomFields, FieldCodePhone)
}

// valuesWithCode collects the trimmed, non-empty values of every field whose
// code matches (case-insensitively: the code is a constant, its case is not
// worth a lost e-mail). It returns nil when there are none.
func valuesWithCode(fields []CustomField, code string) []string {
	var out []string
	for _, f := range fields {
		if !strings.EqualFold(f.Code, code) {
			continue
		}
		for _, v := range f.Values {
			if s := strings.TrimSpace(v.Value); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
