package kommoemu

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

const contactFieldsPath = "/api/v4/contacts/custom_fields"

// serveContactFields is GET /api/v4/contacts/custom_fields: the system
// fields (EMAIL, PHONE) and the account's user fields, on one page.
func (s *Server) serveContactFields(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	var fields []map[string]any
	for _, code := range []string{kommo.FieldCodeEmail, kommo.FieldCodePhone} {
		sys := systemFields[code]
		fields = append(fields, map[string]any{"id": sys.id, "name": sys.name, "code": code, "type": "multitext", "entity_type": "contacts"})
	}
	s.mu.Lock()
	for _, name := range slices.Sorted(maps.Keys(r.acct.fieldIDs)) {
		fields = append(fields, map[string]any{"id": r.acct.fieldIDs[name], "name": name, "code": nil, "type": "text", "entity_type": "contacts"})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_total_items": len(fields),
		"_page":        1,
		"_links":       map[string]link{"self": {r.base + contactFieldsPath}},
		"_embedded":    map[string]any{"custom_fields": fields},
	})
}

// fieldRequest is one element of POST /api/v4/contacts/custom_fields.
type fieldRequest struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// serveAddContactFields is POST /api/v4/contacts/custom_fields: new user
// fields of type text. The emulator keys user fields by name, so it
// refuses a name the account already has (Kommo itself would accept it).
func (s *Server) serveAddContactFields(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	var reqs []fieldRequest
	if !decodeWrite(w, r, &reqs) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range reqs {
		if err := s.checkNewField(r.acct, f); err != "" {
			writeValidation(w, validationError{Path: strconv.Itoa(i), Detail: err})
			return
		}
	}
	out := make([]map[string]any, 0, len(reqs))
	for i, f := range reqs {
		id := s.newID()
		r.acct.fieldIDs[f.Name] = id
		out = append(out, map[string]any{"id": id, "name": f.Name, "type": f.Type, "entity_type": "contacts", "request_id": strconv.Itoa(i)})
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{"_embedded": map[string]any{"custom_fields": out}})
}

func (s *Server) checkNewField(a *account, f fieldRequest) string {
	switch {
	case strings.TrimSpace(f.Name) == "":
		return "name is required"
	case f.Type != "text":
		return fmt.Sprintf("type %q is not supported by the emulator (text only)", f.Type)
	case a.fieldIDs[f.Name] != 0:
		return "the account has a field of this name"
	}
	return ""
}

// fieldName is the name of the account's user field id, "" if none.
func (a *account) fieldName(id int64) string {
	for name, fid := range a.fieldIDs {
		if fid == id {
			return name
		}
	}
	return ""
}

// hasField: id is a system field or one of the account's user fields.
func (a *account) hasField(id int64) bool {
	for _, sys := range systemFields {
		if sys.id == id {
			return true
		}
	}
	return a.fieldName(id) != ""
}
