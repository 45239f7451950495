package unisender

import (
	"context"
	"net/url"
)

// ImportRequest are the arguments of importContacts. Rows may be any length;
// the client sends them MaxImportRows at a time.
type ImportRequest struct {
	// FieldNames name the columns: email and/or phone, system columns
	// (email_list_ids, email_status, tags, delete, …) and user fields.
	FieldNames []string
	// Rows hold one value per field name each.
	Rows           [][]string
	OverwriteTags  bool
	OverwriteLists bool
}

// ImportResult sums the answers of every call of one ImportContacts.
type ImportResult struct {
	Total     int
	Inserted  int
	Updated   int
	Deleted   int
	NewEmails int
	Invalid   int
	// Log holds the per-row rejections; Index is the row's index in the
	// caller's Rows, whatever call carried it.
	Log []ImportLogEntry
}

// ImportLogEntry is one rejected or annotated row.
type ImportLogEntry struct {
	Index   int
	Code    string
	Message string
}

// ImportContacts imports rows in calls of at most MaxImportRows and merges
// the answers. Each call is retried at most twice on a transient failure,
// as the reference advises. If a call fails, the result so far and an
// *ImportError naming the first row not imported are returned. No rows: no
// call.
func (c *Client) ImportContacts(ctx context.Context, req ImportRequest) (*ImportResult, error) {
	if len(req.FieldNames) == 0 {
		return nil, invalidRequest("importContacts", "no field names")
	}
	for i, row := range req.Rows {
		if len(row) != len(req.FieldNames) {
			return nil, invalidRequest("importContacts", "row %d has %d values for %d field names", i, len(row), len(req.FieldNames))
		}
	}
	total := &ImportResult{}
	for start := 0; start < len(req.Rows); start += MaxImportRows {
		end := min(start+MaxImportRows, len(req.Rows))
		part, err := c.importChunk(ctx, req, req.Rows[start:end])
		if err != nil {
			return total, &ImportError{FirstRow: start, Err: err}
		}
		total.add(part, start)
	}
	return total, nil
}

type importAnswer struct {
	Total     flexInt `json:"total"`
	Inserted  flexInt `json:"inserted"`
	Updated   flexInt `json:"updated"`
	Deleted   flexInt `json:"deleted"`
	NewEmails flexInt `json:"new_emails"`
	Invalid   flexInt `json:"invalid"`
	Log       []struct {
		Index   flexInt    `json:"index"`
		Code    flexString `json:"code"`
		Message string     `json:"message"`
	} `json:"log"`
}

func (c *Client) importChunk(ctx context.Context, req ImportRequest, rows [][]string) (*importAnswer, error) {
	form := url.Values{
		"overwrite_tags":  {boolArg(req.OverwriteTags)},
		"overwrite_lists": {boolArg(req.OverwriteLists)},
	}
	setList(form, "field_names", req.FieldNames)
	setMatrix(form, "data", rows)
	var ans importAnswer
	if _, err := c.call(ctx, "importContacts", form, min(c.maxRetries, importMaxRetries), &ans); err != nil {
		return nil, err
	}
	return &ans, nil
}

// add merges one call's answer; offset re-bases its row indexes to the
// caller's Rows.
func (r *ImportResult) add(a *importAnswer, offset int) {
	r.Total += int(a.Total)
	r.Inserted += int(a.Inserted)
	r.Updated += int(a.Updated)
	r.Deleted += int(a.Deleted)
	r.NewEmails += int(a.NewEmails)
	r.Invalid += int(a.Invalid)
	for _, e := range a.Log {
		r.Log = append(r.Log, ImportLogEntry{Index: offset + int(e.Index), Code: string(e.Code), Message: e.Message})
	}
}
