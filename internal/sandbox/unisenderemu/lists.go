package unisenderemu

import (
	"regexp"
	"strings"
)

// methodHandler runs one API method with the state lock held.
type methodHandler func(s *Server, a *account, form formValues) (any, *apiError)

// methods are the API methods the emulator serves; any other name answers
// unknown_method.
var methods map[string]methodHandler

func init() {
	methods = map[string]methodHandler{
		"getLists":         (*Server).getLists,
		"createList":       (*Server).createList,
		"getFields":        (*Server).getFields,
		"createField":      (*Server).createField,
		"importContacts":   (*Server).importContacts,
		"subscribe":        (*Server).subscribe,
		"exclude":          (*Server).exclude,
		"unsubscribe":      (*Server).unsubscribe,
		"getContact":       (*Server).getContact,
		"isContactInLists": (*Server).isContactInLists,
		"setHook":          (*Server).setHook,
		"exportContacts":   (*Server).exportContacts,
	}
}

type listJSON struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
}

func (s *Server) getLists(a *account, _ formValues) (any, *apiError) {
	out := make([]listJSON, len(a.lists))
	for i, l := range a.lists {
		out[i] = listJSON{ID: l.id, Title: l.title}
	}
	return out, nil
}

// createList refuses an empty title and a title already in use
// (case-sensitive, after trimming).
func (s *Server) createList(a *account, form formValues) (any, *apiError) {
	title := strings.TrimSpace(form.Get("title"))
	if title == "" {
		return nil, errInvalidArg("title is required")
	}
	for _, l := range a.lists {
		if l.title == title {
			return nil, errInvalidArg("A list with this title already exists")
		}
	}
	l := &list{id: s.newID(), title: title}
	a.lists = append(a.lists, l)
	return map[string]int64{"id": l.id}, nil
}

type fieldJSON struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	PublicName string `json:"public_name"`
	IsVisible  int    `json:"is_visible"`
	ViewPos    int    `json:"view_pos"`
}

func (s *Server) getFields(a *account, _ formValues) (any, *apiError) {
	out := make([]fieldJSON, len(a.fields))
	for i, f := range a.fields {
		out[i] = fieldJSON{ID: f.id, Name: f.name, Type: f.typ, PublicName: f.publicName, IsVisible: 1, ViewPos: i + 1}
	}
	return out, nil
}

var (
	fieldNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	fieldTypes       = map[string]bool{"string": true, "text": true, "number": true, "date": true, "bool": true}
)

// createField enforces the documented name rules (Latin letters, digits, _
// and -, starting with a letter; case-sensitive; unique) and types. Names of
// system columns (email, phone, tags, delete, email_…, phone_…) are refused.
func (s *Server) createField(a *account, form formValues) (any, *apiError) {
	name, typ := form.Get("name"), form.Get("type")
	switch {
	case !fieldNamePattern.MatchString(name):
		return nil, errInvalidArg("Invalid field name: use Latin letters, digits, _ and -, starting with a letter")
	case isSystemColumn(name):
		return nil, errInvalidArg("Field name is reserved")
	case !fieldTypes[typ]:
		return nil, errInvalidArg("Invalid field type: want string, text, number, date or bool")
	case a.fieldByName(name) != nil:
		return nil, errInvalidArg("A field with this name already exists")
	}
	public := form.Get("public_name")
	if public == "" {
		public = name
	}
	f := &field{id: s.newID(), name: name, typ: typ, publicName: public}
	a.fields = append(a.fields, f)
	return map[string]int64{"id": f.id}, nil
}

func isSystemColumn(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "email", "phone", "tags", "delete":
		return true
	}
	return strings.HasPrefix(n, "email_") || strings.HasPrefix(n, "phone_")
}
