package mapping

import (
	"reflect"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

func contact() *kommo.Contact {
	c := &kommo.Contact{
		ID: 7, Type: kommo.ContactTypeContact, Name: " Maria Lopez ",
		Tags: []string{"vip", "news,letter", "vip", ""},
		CustomFields: []kommo.CustomField{
			{ID: 1, Code: "PHONE", Values: []kommo.FieldValue{{Value: "611 222 333"}, {Value: "+34 (611) 222-333"}}},
			{ID: 2, Code: "EMAIL", Values: []kommo.FieldValue{{Value: " Maria@Example.com "}, {Value: "maria@example.com"}, {Value: "m@work.example"}}},
			{ID: 9, Name: "City", Values: []kommo.FieldValue{{Value: "Madrid"}}},
			{ID: 10, Code: "POSITION", Values: []kommo.FieldValue{{Value: "CTO"}}},
		},
	}
	c.DeriveContactPoints()
	return c
}

func TestProfileAllEmails(t *testing.T) {
	spec := v1alpha1.UnisenderBindingSpec{FieldMapping: v1alpha1.FieldMapping{CustomFields: []v1alpha1.CustomFieldMapping{
		{KommoFieldID: 9, UnisenderField: "city"}, {KommoFieldCode: "position", UnisenderField: "role"}, {KommoFieldID: 99, UnisenderField: "absent"},
	}}}
	p := New(spec, 55).Profile(contact())
	want := Profile{
		Emails: []string{"maria@example.com", "m@work.example"},
		Name:   "Maria Lopez", Phone: "+34611222333",
		Tags:   []string{"news letter", "vip"},
		Fields: map[string]string{"city": "Madrid", "role": "CTO"},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("profile = %+v\nwant      %+v", p, want)
	}
}

// TestWriteBackTagsAndFieldNotSynced: the write-back's tags and its field
// (matched by name, whatever the mapping calls it by) never reach the
// profile, so our own Kommo write changes nothing synced.
func TestWriteBackTagsAndFieldNotSynced(t *testing.T) {
	spec := v1alpha1.UnisenderBindingSpec{
		WriteBack: &v1alpha1.WriteBack{Field: "email status"},
		FieldMapping: v1alpha1.FieldMapping{CustomFields: []v1alpha1.CustomFieldMapping{
			{KommoFieldID: 9, UnisenderField: "city"}, {KommoFieldID: 11, UnisenderField: "status"},
		}},
	}
	c := contact()
	c.Tags = append(c.Tags, "unisender-unsubscribed")
	c.CustomFields = append(c.CustomFields, kommo.CustomField{ID: 11, Name: "Email Status", Values: []kommo.FieldValue{{Value: "unsubscribed"}}})
	p := New(spec, 55).Profile(c)
	if want := map[string]string{"city": "Madrid"}; !reflect.DeepEqual(p.Fields, want) {
		t.Errorf("fields = %v; want %v (the write-back's field dropped)", p.Fields, want)
	}
	if want := []string{"news letter", "vip"}; !reflect.DeepEqual(p.Tags, want) {
		t.Errorf("tags = %v; want %v (the write-back's tag dropped)", p.Tags, want)
	}
}

func TestPrimaryEmailAndDisabledFields(t *testing.T) {
	off := false
	spec := v1alpha1.UnisenderBindingSpec{Emails: v1alpha1.EmailsPrimary, FieldMapping: v1alpha1.FieldMapping{Name: "FullName", Phone: &off, Tags: &off}}
	m := New(spec, 55)
	p := m.Profile(contact())
	if !reflect.DeepEqual(p.Emails, []string{"maria@example.com"}) || p.Phone != "" || p.Tags != nil {
		t.Fatalf("profile = %+v", p)
	}
	if cols := m.UpsertColumns(); !reflect.DeepEqual(cols, []string{"email", "email_list_ids", "FullName"}) {
		t.Fatalf("columns = %v", cols)
	}
	if rows := m.UpsertRows(p); !reflect.DeepEqual(rows, [][]string{{"maria@example.com", "55", "Maria Lopez"}}) {
		t.Fatalf("rows = %v", rows)
	}
}

func TestUpsertRowsMatchColumns(t *testing.T) {
	m := New(v1alpha1.UnisenderBindingSpec{}, 55)
	cols := m.UpsertColumns()
	rows := m.UpsertRows(m.Profile(contact()))
	if len(rows) != 2 {
		t.Fatalf("rows = %d, want one per address", len(rows))
	}
	for _, r := range rows {
		if len(r) != len(cols) {
			t.Fatalf("row %v does not match columns %v", r, cols)
		}
	}
	for _, c := range cols {
		if c == "email_status" {
			t.Fatal("an upsert must never carry email_status")
		}
	}
}

func TestNoEmailNoRows(t *testing.T) {
	c := &kommo.Contact{ID: 1, Name: "Phone only", Phones: []string{"+1 555 0100"}}
	if rows := New(v1alpha1.UnisenderBindingSpec{}, 1).UpsertRows(New(v1alpha1.UnisenderBindingSpec{}, 1).Profile(c)); len(rows) != 0 {
		t.Fatalf("rows = %v, want none", rows)
	}
}

func TestRemovalBatchFollowsPolicy(t *testing.T) {
	m := New(v1alpha1.UnisenderBindingSpec{}, 55)
	emails := []string{"a@x.example", "b@x.example"}
	if b := m.RemovalBatch(emails, v1alpha1.DeletionPolicyExclude); !reflect.DeepEqual(b, &Batch{
		FieldNames: []string{"email", "email_excluded_list_ids"},
		Rows:       [][]string{{"a@x.example", "55"}, {"b@x.example", "55"}},
	}) {
		t.Fatalf("exclude batch = %+v", b)
	}
	if b := m.RemovalBatch(emails, v1alpha1.DeletionPolicyDelete); !reflect.DeepEqual(b.FieldNames, []string{"email", "delete"}) || b.Rows[1][1] != "1" {
		t.Fatalf("delete batch = %+v", b)
	}
	if b := m.RemovalBatch(emails, v1alpha1.DeletionPolicyKeep); b != nil {
		t.Fatalf("keep batch = %+v, want nil", b)
	}
	if b := m.RemovalBatch(nil, v1alpha1.DeletionPolicyDelete); b != nil {
		t.Fatalf("empty batch = %+v, want nil", b)
	}
}

func TestNormalizePhone(t *testing.T) {
	for in, want := range map[string]string{
		"+7 (926) 123-23-23": "+79261232323",
		"0034 611 222 333":   "+34611222333",
		"8 926 123 23 23":    "",
		"+12":                "",
		"":                   "",
	} {
		if got := NormalizePhone(in); got != want {
			t.Errorf("NormalizePhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTagsCappedAtTen(t *testing.T) {
	c := &kommo.Contact{Tags: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}}
	if p := New(v1alpha1.UnisenderBindingSpec{}, 1).Profile(c); len(p.Tags) != 10 {
		t.Fatalf("tags = %v, want 10", p.Tags)
	}
}
