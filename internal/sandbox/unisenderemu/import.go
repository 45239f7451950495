package unisenderemu

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// Per-row log codes of importContacts. Unisender documents a per-row log
// but not its codes; these are the emulator's.
const (
	LogNoContact         = "no_contact"          // neither email nor phone
	LogInvalidEmail      = "invalid_email"       // malformed address
	LogRoleAddress       = "role_address"        // info@, sales@, no-reply@, …
	LogInvalidPhone      = "invalid_phone"       // not +<7..15 digits>
	LogInvalidStatus     = "invalid_status"      // email_status not new|active|inactive|unsubscribed
	LogInvalidListID     = "invalid_list_id"     // unknown or malformed list id
	LogTooManyTags       = "too_many_tags"       // more than 10 tags
	LogInvalidFieldValue = "invalid_field_value" // value does not fit the field type
)

// importStatuses are the email_status values an import may set.
var importStatuses = map[string]bool{StatusNew: true, StatusActive: true, StatusInactive: true, StatusUnsubscribed: true}

// ignoredColumns are documented system columns the emulator accepts without
// modelling them (phone channels, subscription times).
var ignoredColumns = map[string]bool{
	"email_subscribe_times": true, "phone_list_ids": true, "phone_subscribe_times": true,
	"phone_unsubscribed_list_ids": true, "phone_excluded_list_ids": true, "phone_status": true,
}

type importResult struct {
	Total     int        `json:"total"`
	Inserted  int        `json:"inserted"`
	Updated   int        `json:"updated"`
	Deleted   int        `json:"deleted"`
	NewEmails int        `json:"new_emails"`
	Invalid   int        `json:"invalid"`
	Log       []logEntry `json:"log"`
}

type logEntry struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type importOptions struct{ overwriteTags, overwriteLists bool }

// importContacts follows the reference: at most 500 rows and 50 user fields,
// email or phone required, a per-row log so one bad row does not fail the
// batch, delete=1 deletes, and an unsubscribed or blocked contact keeps its
// status whatever email_status says (each such row counts a revival attempt).
func (s *Server) importContacts(a *account, form formValues) (any, *apiError) {
	names := listParam(form, "field_names")
	if len(names) == 0 {
		return nil, errInvalidArg("field_names is required")
	}
	rows := matrixParam(form, "data")
	if len(rows) > MaxImportRows {
		return nil, errInvalidArg(fmt.Sprintf("Too many contacts in one call: %d, at most %d", len(rows), MaxImportRows))
	}
	var o importOptions
	var ok1, ok2 bool
	o.overwriteTags, ok1 = flag(form, "overwrite_tags")
	o.overwriteLists, ok2 = flag(form, "overwrite_lists")
	if !ok1 || !ok2 {
		return nil, errInvalidArg("overwrite_tags and overwrite_lists take 0 or 1")
	}
	cols, aerr := parseImportColumns(a, names)
	if aerr != nil {
		return nil, aerr
	}
	for _, row := range rows {
		for j := range row.cells {
			if j >= len(names) {
				return nil, errInvalidArg(fmt.Sprintf("data[%d][%d] has no column in field_names", row.index, j))
			}
		}
	}
	res := importResult{Total: len(rows), Log: []logEntry{}}
	for _, row := range rows {
		s.importRow(a, cols, row, o, &res)
	}
	return res, nil
}

// importColumns maps field_names positions to their meaning; -1 = absent.
type importColumns struct {
	email, phone, status, del, tags int
	listIDs, unsubscribed, excluded int
	user                            map[int]*field
}

func parseImportColumns(a *account, names []string) (importColumns, *apiError) {
	cols := importColumns{-1, -1, -1, -1, -1, -1, -1, -1, make(map[int]*field)}
	special := map[string]*int{
		"email": &cols.email, "phone": &cols.phone, "email_status": &cols.status, "delete": &cols.del,
		"tags": &cols.tags, "email_list_ids": &cols.listIDs,
		"email_unsubscribed_list_ids": &cols.unsubscribed, "email_excluded_list_ids": &cols.excluded,
	}
	seen := make(map[string]bool)
	for j, name := range names {
		lower := strings.ToLower(strings.TrimSpace(name))
		key := lower
		if !isSystemColumn(lower) {
			key = name
		}
		if seen[key] {
			return cols, errInvalidArg(fmt.Sprintf("Duplicate column %q in field_names", truncate.Text(name, 60)))
		}
		seen[key] = true
		if p, ok := special[lower]; ok {
			*p = j
			continue
		}
		if ignoredColumns[lower] {
			continue
		}
		f := a.fieldByName(name)
		if f == nil {
			return cols, errInvalidArg(fmt.Sprintf("Unknown field %q in field_names", truncate.Text(name, 60)))
		}
		cols.user[j] = f
	}
	switch {
	case cols.email < 0 && cols.phone < 0:
		return cols, errInvalidArg("field_names must include email or phone")
	case len(cols.user) > MaxImportUserFields:
		return cols, errInvalidArg(fmt.Sprintf("Too many user fields: %d, at most %d", len(cols.user), MaxImportUserFields))
	}
	return cols, nil
}

// rowInput is one validated data row.
type rowInput struct {
	email, phone, status            string
	listIDs, unsubscribed, excluded []int64
	tags                            []string
	delete                          bool
	fields                          map[string]string
}

func (s *Server) importRow(a *account, cols importColumns, row matrixRow, o importOptions, res *importResult) {
	in, reject := s.readRow(a, cols, row)
	if reject != nil {
		res.Invalid++
		res.Log = append(res.Log, *reject)
		return
	}
	c := a.find(in.email, in.phone)
	if in.delete {
		if c != nil {
			a.remove(c)
			res.Deleted++
		}
		return
	}
	if c == nil {
		status := in.status
		if status == "" {
			status = StatusNew
		}
		c = s.addContact(a, in.email, in.phone, status)
		res.Inserted++
		if in.email != "" {
			res.NewEmails++
		}
	} else {
		res.Updated++
		s.setImportedStatus(c, in.status)
		a.setPhone(c, in.phone)
	}
	applyImportedLists(c, cols, in, o, s.now())
	applyImportedTags(c, cols, in, o)
	for name, v := range in.fields {
		if v == "" {
			delete(c.fields, name)
		} else {
			c.fields[name] = v
		}
	}
}

// setImportedStatus changes an existing contact's status, except that an
// unsubscribed or blocked contact is never revived.
func (s *Server) setImportedStatus(c *contact, status string) {
	if status == "" || status == c.status {
		return
	}
	if left(c.status) {
		if !left(status) {
			s.stats.revivals++
		}
		return
	}
	c.status = status
}

// applyImportedLists adds to email_list_ids (an unsubscribed membership
// stays unsubscribed), marks the unsubscribed and excluded columns, and with
// overwrite_lists=1 excludes the contact from every list the row omits.
func applyImportedLists(c *contact, cols importColumns, in rowInput, o importOptions, now time.Time) {
	for _, id := range in.listIDs {
		c.join(id, now)
	}
	for _, id := range in.unsubscribed {
		c.setListStatus(id, ListUnsubscribed, now)
	}
	for _, id := range in.excluded {
		c.setListStatus(id, ListExcluded, now)
	}
	if o.overwriteLists && cols.listIDs >= 0 {
		c.excludeOthers(slices.Concat(in.listIDs, in.unsubscribed, in.excluded), now)
	}
}

func applyImportedTags(c *contact, cols importColumns, in rowInput, o importOptions) {
	if cols.tags < 0 {
		return
	}
	if o.overwriteTags {
		c.tags = slices.Clone(in.tags)
		return
	}
	c.addTags(in.tags)
}

// readRow validates a row; a rejection comes back as its log entry.
func (s *Server) readRow(a *account, cols importColumns, row matrixRow) (rowInput, *logEntry) {
	cell := func(j int) string {
		if j < 0 {
			return ""
		}
		return strings.TrimSpace(row.cells[j])
	}
	reject := func(code, format string, args ...any) (rowInput, *logEntry) {
		return rowInput{}, &logEntry{Index: row.index, Code: code, Message: fmt.Sprintf(format, args...)}
	}
	in := rowInput{email: cell(cols.email), phone: cell(cols.phone), delete: cell(cols.del) == "1"}
	switch {
	case in.email == "" && in.phone == "":
		return reject(LogNoContact, "The row has neither an email nor a phone")
	case in.email != "" && !validEmail(in.email):
		return reject(LogInvalidEmail, "Invalid email address %q", truncate.Text(in.email, 100))
	case in.email != "" && s.isRoleAddress(in.email):
		return reject(LogRoleAddress, "Role address %q is not imported", truncate.Text(in.email, 100))
	case in.phone != "" && !validPhone(in.phone):
		return reject(LogInvalidPhone, "Invalid phone %q: want international format like +79261232323", truncate.Text(in.phone, 40))
	}
	if in.delete {
		return in, nil
	}
	in.status = strings.ToLower(cell(cols.status))
	if in.status != "" && !importStatuses[in.status] {
		return reject(LogInvalidStatus, "Invalid email_status %q", truncate.Text(in.status, 40))
	}
	for _, target := range []struct {
		col int
		ids *[]int64
	}{{cols.listIDs, &in.listIDs}, {cols.unsubscribed, &in.unsubscribed}, {cols.excluded, &in.excluded}} {
		ids, ok := idList(cell(target.col))
		if !ok {
			return reject(LogInvalidListID, "Malformed list ids %q", truncate.Text(cell(target.col), 60))
		}
		if id, bad := a.unknownList(ids); bad {
			return reject(LogInvalidListID, "Unknown list id %d", id)
		}
		*target.ids = ids
	}
	if in.tags = tagList(cell(cols.tags)); len(in.tags) > MaxTags {
		return reject(LogTooManyTags, "%d tags, at most %d", len(in.tags), MaxTags)
	}
	in.fields = make(map[string]string, len(cols.user))
	for j, f := range cols.user {
		v := cell(j)
		if !validFieldValue(f.typ, v) {
			return reject(LogInvalidFieldValue, "Value of %s does not fit type %s", f.name, f.typ)
		}
		in.fields[f.name] = v
	}
	return in, nil
}
