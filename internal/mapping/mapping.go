// Package mapping turns Kommo contacts into Unisender import rows following a
// UnisenderBinding's field mapping. The initial import, the resync and the
// webhook worker all go through it, so a contact looks the same in Unisender
// whichever path carried it.
package mapping

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// Unisender's special import columns used here.
const (
	ColumnEmail         = "email"
	ColumnListIDs       = "email_list_ids"
	ColumnExcludedLists = "email_excluded_list_ids"
	ColumnDelete        = "delete"
	ColumnPhone         = "phone"
	ColumnTags          = "tags"
)

// MaxTags is Unisender's limit of tags per contact.
const MaxTags = 10

// Profile is what the sync pushes for a contact: its addresses and the data
// every one of them carries.
type Profile struct {
	Emails []string // normalised, de-duplicated, in Kommo's order
	Name   string
	Phone  string
	Tags   []string
	Fields map[string]string // Unisender field name → value, custom fields only
}

// Batch is the column layout and rows of one importContacts call.
type Batch struct {
	FieldNames []string
	Rows       [][]string
}

// Mapper applies one binding's mapping for one list.
type Mapper struct {
	spec   v1alpha1.UnisenderBindingSpec
	listID string
}

// New returns the mapper of a binding whose list has the given id.
func New(spec v1alpha1.UnisenderBindingSpec, listID int64) *Mapper {
	return &Mapper{spec: spec, listID: strconv.FormatInt(listID, 10)}
}

// ListID is the id of the binding's list.
func (m *Mapper) ListID() int64 {
	id, _ := strconv.ParseInt(m.listID, 10, 64)
	return id
}

// TagsEnabled reports whether the binding syncs tags.
func (m *Mapper) TagsEnabled() bool { return m.spec.FieldMapping.TagsEnabled() }

// NameField is the Unisender field that carries the contact's name.
func (m *Mapper) NameField() string { return m.spec.FieldMapping.NameField() }

// Profile extracts what the binding syncs from a contact.
func (m *Mapper) Profile(c *kommo.Contact) Profile {
	p := Profile{Emails: m.emails(c), Name: displayName(c), Fields: map[string]string{}}
	if m.spec.FieldMapping.PhoneEnabled() {
		p.Phone = firstPhone(c.Phones)
	}
	if m.spec.FieldMapping.TagsEnabled() {
		p.Tags = cleanTags(m.withoutWriteBackTags(c.Tags))
	}
	fields := m.withoutWriteBackField(c.CustomFields)
	for _, cf := range m.spec.FieldMapping.CustomFields {
		if v, ok := customValue(fields, cf); ok {
			p.Fields[cf.UnisenderField] = v
		}
	}
	return p
}

// withoutWriteBackTags drops the tags the binding's write-back adds
// (spec.writeBack): they say what Unisender told us, so syncing them back
// would only make our own Kommo writes cause Unisender calls.
func (m *Mapper) withoutWriteBackTags(tags []string) []string {
	if m.spec.WriteBack == nil {
		return tags
	}
	ours := m.spec.WriteBack.Tags()
	return slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return slices.Contains(ours, t) })
}

// withoutWriteBackField drops the Kommo field the binding's write-back
// sets (spec.writeBack.field, by name), for the reason its tags are
// dropped: a mapping of that field would make our own write reach Unisender.
func (m *Mapper) withoutWriteBackField(fields []kommo.CustomField) []kommo.CustomField {
	if m.spec.WriteBack == nil || m.spec.WriteBack.Field == "" {
		return fields
	}
	ours := strings.TrimSpace(m.spec.WriteBack.Field)
	return slices.DeleteFunc(slices.Clone(fields), func(f kommo.CustomField) bool { return strings.EqualFold(strings.TrimSpace(f.Name), ours) })
}

// emails are the addresses the binding syncs: all of them, or the first.
func (m *Mapper) emails(c *kommo.Contact) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range c.Emails {
		if n := emailaddr.Normalize(e); n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if m.spec.Emails == v1alpha1.EmailsPrimary && len(out) > 1 {
		out = out[:1]
	}
	return out
}

// UpsertColumns is the column layout of upsert batches: the e-mail, the
// list, then the mapped data. It never holds email_status: an import must not
// try to revive an address its owner unsubscribed.
func (m *Mapper) UpsertColumns() []string {
	cols := []string{ColumnEmail, ColumnListIDs, m.spec.FieldMapping.NameField()}
	if m.spec.FieldMapping.PhoneEnabled() {
		cols = append(cols, ColumnPhone)
	}
	if m.spec.FieldMapping.TagsEnabled() {
		cols = append(cols, ColumnTags)
	}
	for _, cf := range m.spec.FieldMapping.CustomFields {
		cols = append(cols, cf.UnisenderField)
	}
	return cols
}

// UpsertRows returns one row per synced address of the profile, in the
// layout of UpsertColumns.
func (m *Mapper) UpsertRows(p Profile) [][]string {
	rows := make([][]string, 0, len(p.Emails))
	for _, email := range p.Emails {
		row := []string{email, m.listID, p.Name}
		if m.spec.FieldMapping.PhoneEnabled() {
			row = append(row, p.Phone)
		}
		if m.spec.FieldMapping.TagsEnabled() {
			row = append(row, strings.Join(p.Tags, ","))
		}
		for _, cf := range m.spec.FieldMapping.CustomFields {
			row = append(row, p.Fields[cf.UnisenderField])
		}
		rows = append(rows, row)
	}
	return rows
}

// RemovalBatch takes addresses out of the list as the deletion policy says:
// Exclude removes them from the list without unsubscribing them, Delete
// deletes the contacts, Keep leaves them (nil batch).
func (m *Mapper) RemovalBatch(emails []string, policy v1alpha1.DeletionPolicy) *Batch {
	if len(emails) == 0 || policy == v1alpha1.DeletionPolicyKeep {
		return nil
	}
	b := &Batch{FieldNames: []string{ColumnEmail, ColumnExcludedLists}}
	value := m.listID
	if policy == v1alpha1.DeletionPolicyDelete {
		b.FieldNames[1], value = ColumnDelete, "1"
	}
	for _, e := range emails {
		b.Rows = append(b.Rows, []string{e, value})
	}
	return b
}

func displayName(c *kommo.Contact) string {
	if n := strings.TrimSpace(c.Name); n != "" {
		return n
	}
	return strings.TrimSpace(strings.TrimSpace(c.FirstName) + " " + strings.TrimSpace(c.LastName))
}

// firstPhone returns the first number that can be written in the
// international form Unisender wants (+ and digits). A number without a
// country code cannot be, and is left out rather than guessed.
func firstPhone(phones []string) string {
	for _, p := range phones {
		if n := NormalizePhone(p); n != "" {
			return n
		}
	}
	return ""
}

// NormalizePhone keeps the digits of an international number ("+34 611-222
// 333" → "+34611222333", "0034…" → "+34…"); it returns "" for numbers without
// a country prefix.
func NormalizePhone(s string) string {
	s = strings.TrimSpace(s)
	international := strings.HasPrefix(s, "+")
	if strings.HasPrefix(s, "00") {
		international, s = true, s[2:]
	}
	var digits strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits.WriteRune(r)
		}
	}
	if !international || digits.Len() < 7 || digits.Len() > 15 {
		return ""
	}
	return "+" + digits.String()
}

// cleanTags drops commas (the tags column is comma-separated), empties and
// duplicates, sorts for stable rows, and keeps Unisender's maximum.
func cleanTags(tags []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tags {
		t = strings.TrimSpace(strings.ReplaceAll(t, ",", " "))
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Strings(out)
	if len(out) > MaxTags {
		out = out[:MaxTags]
	}
	return out
}

// customValue finds the first value of the Kommo field a mapping names.
func customValue(fields []kommo.CustomField, cf v1alpha1.CustomFieldMapping) (string, bool) {
	for _, f := range fields {
		matches := (cf.KommoFieldID != 0 && f.ID == cf.KommoFieldID) ||
			(cf.KommoFieldCode != "" && strings.EqualFold(f.Code, cf.KommoFieldCode))
		if matches && len(f.Values) > 0 {
			return strings.TrimSpace(f.Values[0].Value), true
		}
	}
	return "", false
}
