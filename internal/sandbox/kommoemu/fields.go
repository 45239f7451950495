package kommoemu

import (
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// systemField describes Kommo's EMAIL and PHONE fields. The ids are those of
// the fixtures in ../shared/fixtures/kommo-webhooks/; real accounts have
// their own.
type systemField struct {
	id    int64
	name  string
	enums map[string]int64 // enum code → enum id
}

var systemFields = map[string]systemField{
	kommo.FieldCodeEmail: {id: 812347, name: "Email", enums: map[string]int64{
		"WORK": 1364060, "PRIV": 1364062, "OTHER": 1364064}},
	kommo.FieldCodePhone: {id: 812345, name: "Phone", enums: map[string]int64{
		"WORK": 1364056, "WORKDD": 1364066, "MOB": 1364068, "FAX": 1364070, "HOME": 1364072, "OTHER": 1364074}},
}

// withContactPoints makes the field with code hold values when values is
// not nil and differs from what the fields hold: the field's values are
// replaced (enum WORK for new ones), the field added if missing, removed if
// values is empty.
func withContactPoints(fields []kommo.CustomField, code string, values []string) []kommo.CustomField {
	if values == nil {
		return fields
	}
	c := kommo.Contact{CustomFields: fields}
	c.DeriveContactPoints()
	have := c.Emails
	if code == kommo.FieldCodePhone {
		have = c.Phones
	}
	if slices.Equal(have, values) {
		return fields
	}
	fields = slices.DeleteFunc(fields, func(f kommo.CustomField) bool { return strings.EqualFold(f.Code, code) })
	if len(values) == 0 {
		return fields
	}
	f := kommo.CustomField{Code: code}
	for _, v := range values {
		f.Values = append(f.Values, kommo.FieldValue{Value: v, EnumCode: "WORK"})
	}
	return append(fields, f)
}

// fillField gives a field the id, name and enum ids Kommo would show. A
// user field without id gets one per name, stable within the account; one
// written by id only (a PATCH) gets its name.
func (s *Server) fillField(a *account, f *kommo.CustomField) {
	if sys, ok := systemFields[strings.ToUpper(f.Code)]; ok {
		f.Code = strings.ToUpper(f.Code)
		if f.ID == 0 {
			f.ID = sys.id
		}
		if f.Name == "" {
			f.Name = sys.name
		}
		for i := range f.Values {
			fillEnum(&f.Values[i], sys.enums)
		}
		return
	}
	if f.ID == 0 {
		if _, ok := a.fieldIDs[f.Name]; !ok {
			a.fieldIDs[f.Name] = s.newID()
		}
		f.ID = a.fieldIDs[f.Name]
	}
	if f.Name == "" {
		f.Name = a.fieldName(f.ID)
	}
}

func fillEnum(v *kommo.FieldValue, enums map[string]int64) {
	switch {
	case v.EnumID == 0 && v.EnumCode == "":
		v.EnumCode, v.EnumID = "WORK", enums["WORK"]
	case v.EnumID == 0:
		v.EnumID = enums[v.EnumCode]
	case v.EnumCode == "":
		for code, id := range enums {
			if id == v.EnumID {
				v.EnumCode = code
			}
		}
	}
}
