package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
)

// The initial import and the resync apply contacts a batch (an
// importContacts call, 500 rows) at a time. ApplyContact costs four to six
// statements per contact; ApplyContacts does the same work for a batch in
// about six statements, which makes the store no longer the slow part of an
// import (10,000 contacts: ~8 s one by one on MariaDB, well under a second
// in batches). Written by the importer/binding helper (issue #4);
// TestApplyContactsMatchesApplyContact keeps it equal to ApplyContact.

// maxRowsPerStatement bounds multi-row statements well below MySQL's 65,535
// placeholders.
const maxRowsPerStatement = 1000

// ApplyContacts applies a batch of contact events of one tenant as
// ApplyContact would apply them one after the other, with one difference
// that only makes the result more accurate: OrphanedEmails are decided
// after the whole batch, so an address one contact drops and a later one
// takes up is not reported as orphaned. Results are in the batch's order.
// A batch that names a contact twice is applied one by one.
func (t *Tx) ApplyContacts(ctx context.Context, tenant string, batch []ContactState) ([]ApplyResult, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	in := make([]ContactState, len(batch))
	ids := make([]int64, len(batch))
	seen := make(map[int64]bool, len(batch))
	for i, c := range batch {
		n, err := normalizeContact(c)
		if err != nil {
			return nil, err
		}
		if seen[n.ID] {
			return t.applyOneByOne(ctx, tenant, batch)
		}
		seen[n.ID] = true
		in[i], ids[i] = n, n.ID
	}
	if len(in) == 0 {
		return nil, nil
	}
	prev, err := readContacts(ctx, t.tx, tenant, ids)
	if err != nil {
		return nil, err
	}
	results := make([]ApplyResult, len(in))
	var writes, touches []ContactState
	var added, removed []emailRow
	for i := range in {
		c, p := in[i], prev[in[i].ID]
		results[i].Previous = p
		switch decide(c, p) {
		case skip:
			continue
		case touch:
			touches = append(touches, c)
			continue
		}
		results[i].Applied = true
		writes = append(writes, c)
		var before []string
		if p != nil {
			before = p.Emails
		}
		results[i].AddedEmails, results[i].RemovedEmails = diffSorted(before, c.Emails)
		for _, e := range results[i].AddedEmails {
			added = append(added, emailRow{c.ID, e})
		}
		for _, e := range results[i].RemovedEmails {
			removed = append(removed, emailRow{c.ID, e})
		}
	}
	addedEmails := make([]string, len(added))
	for i, r := range added {
		addedEmails[i] = r.email
	}
	heldBefore, err := heldEmails(ctx, t.tx, tenant, addedEmails)
	if err != nil {
		return nil, err
	}
	markNew(results, heldBefore)
	if err := writeContacts(ctx, t.tx, tenant, writes); err != nil {
		return nil, err
	}
	if err := touchContacts(ctx, t.tx, tenant, touches); err != nil {
		return nil, err
	}
	if err := deleteEmailRows(ctx, t.tx, tenant, removed); err != nil {
		return nil, err
	}
	if err := insertEmailRows(ctx, t.tx, tenant, added); err != nil {
		return nil, err
	}
	return results, markOrphans(ctx, t.tx, tenant, results, removed)
}

func (t *Tx) applyOneByOne(ctx context.Context, tenant string, batch []ContactState) ([]ApplyResult, error) {
	var emails []string
	for _, c := range batch {
		for _, e := range c.Emails {
			emails = append(emails, emailaddr.Normalize(e))
		}
	}
	heldBefore, err := heldEmails(ctx, t.tx, tenant, emails)
	if err != nil {
		return nil, err
	}
	out := make([]ApplyResult, len(batch))
	for i, c := range batch {
		res, err := t.ApplyContact(ctx, tenant, c)
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	// Same rule as the batched path: an address taken up later in the
	// batch is not orphaned.
	held := map[string]bool{}
	for i := len(out) - 1; i >= 0; i-- {
		out[i].OrphanedEmails = slices.DeleteFunc(out[i].OrphanedEmails, func(e string) bool { return held[e] })
		for _, e := range out[i].AddedEmails {
			held[e] = true
		}
	}
	// New means new before the batch, as on the batched path.
	markNew(out, heldBefore)
	return out, nil
}

type emailRow struct {
	id    int64
	email string
}

// readContacts loads and locks the stored versions of the contacts, in id
// order (so that concurrent batches lock in the same order).
func readContacts(ctx context.Context, q querier, tenant string, ids []int64) (map[int64]*ContactState, error) {
	out := make(map[int64]*ContactState, len(ids))
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	for chunk := range slices.Chunk(sorted, maxRowsPerStatement) {
		args := append([]any{tenant}, int64Args(chunk)...)
		rows, err := q.QueryContext(ctx, `SELECT contact_id, updated_at, read_at, deleted, outside_segment, name, phone, tags, fields, synced_at
			FROM contact_state WHERE tenant = ? AND contact_id IN (`+placeholders("?", len(chunk))+`)
			ORDER BY contact_id FOR UPDATE`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: read contacts: %w", err)
		}
		for rows.Next() {
			c, err := scanContact(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: read contacts: %w", err)
			}
			out[c.ID] = &c
		}
		err = errors.Join(rows.Err(), rows.Close())
		if err != nil {
			return nil, fmt.Errorf("store: read contacts: %w", err)
		}
		if err := attachEmailsOf(ctx, q, tenant, chunk, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func attachEmailsOf(ctx context.Context, q querier, tenant string, ids []int64, contacts map[int64]*ContactState) error {
	args := append([]any{tenant}, int64Args(ids)...)
	rows, err := q.QueryContext(ctx, `SELECT contact_id, email FROM contact_emails
		WHERE tenant = ? AND contact_id IN (`+placeholders("?", len(ids))+`) ORDER BY contact_id, email`, args...)
	if err != nil {
		return fmt.Errorf("store: read e-mails of contacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var e string
		if err := rows.Scan(&id, &e); err != nil {
			return fmt.Errorf("store: read e-mails of contacts: %w", err)
		}
		if c := contacts[id]; c != nil {
			c.Emails = append(c.Emails, e)
		}
	}
	return rows.Err()
}

// writeContacts stores the new versions. REPLACE (delete and insert) is the
// multi-row upsert that MySQL 8 and MariaDB share without VALUES().
func writeContacts(ctx context.Context, q querier, tenant string, cs []ContactState) error {
	at := now()
	for chunk := range slices.Chunk(cs, maxRowsPerStatement) {
		args := make([]any, 0, 11*len(chunk))
		for _, c := range chunk {
			tags, err := json.Marshal(nonNil(c.Tags))
			if err != nil {
				return err
			}
			fields := []byte("{}")
			if c.Fields != nil {
				if fields, err = json.Marshal(c.Fields); err != nil {
					return err
				}
			}
			args = append(args, tenant, c.ID, c.UpdatedAt, c.ReadAt, c.Deleted, c.OutsideSegment, c.Name, c.Phone, tags, fields, at)
		}
		if _, err := q.ExecContext(ctx, `REPLACE INTO contact_state
			(tenant, contact_id, updated_at, read_at, deleted, outside_segment, name, phone, tags, fields, synced_at) VALUES `+
			placeholders("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", len(chunk)), args...); err != nil {
			return fmt.Errorf("store: write contacts: %w", err)
		}
	}
	return nil
}

// touchContacts does touchContact's work for a batch, in a statement per
// maxRowsPerStatement contacts.
func touchContacts(ctx context.Context, q querier, tenant string, cs []ContactState) error {
	for chunk := range slices.Chunk(cs, maxRowsPerStatement) {
		readAt := make([]any, 0, 2*len(chunk))
		updatedAt := make([]any, 0, 2*len(chunk))
		ids := make([]any, 0, len(chunk))
		for _, c := range chunk {
			readAt = append(readAt, c.ID, c.ReadAt)
			updatedAt = append(updatedAt, c.ID, c.UpdatedAt)
			ids = append(ids, c.ID)
		}
		args := append(append(append(readAt, updatedAt...), tenant), ids...)
		if _, err := q.ExecContext(ctx, `UPDATE contact_state SET
			read_at = CASE contact_id `+strings.Repeat("WHEN ? THEN ? ", len(chunk))+`END,
			updated_at = CASE contact_id `+strings.Repeat("WHEN ? THEN ? ", len(chunk))+`END
			WHERE tenant = ? AND contact_id IN (`+placeholders("?", len(chunk))+`)`, args...); err != nil {
			return fmt.Errorf("store: touch contacts: %w", err)
		}
	}
	return nil
}

func insertEmailRows(ctx context.Context, q querier, tenant string, rows []emailRow) error {
	for chunk := range slices.Chunk(rows, maxRowsPerStatement) {
		args := make([]any, 0, 3*len(chunk))
		for _, r := range chunk {
			args = append(args, tenant, r.id, r.email)
		}
		if _, err := q.ExecContext(ctx, `INSERT INTO contact_emails (tenant, contact_id, email) VALUES `+
			placeholders("(?, ?, ?)", len(chunk))+` ON DUPLICATE KEY UPDATE email = email`, args...); err != nil {
			return fmt.Errorf("store: add e-mails of contacts: %w", err)
		}
	}
	return nil
}

func deleteEmailRows(ctx context.Context, q querier, tenant string, rows []emailRow) error {
	for chunk := range slices.Chunk(rows, maxRowsPerStatement) {
		args := []any{tenant}
		for _, r := range chunk {
			args = append(args, r.id, r.email)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM contact_emails WHERE tenant = ? AND (contact_id, email) IN (`+
			placeholders("(?, ?)", len(chunk))+`)`, args...); err != nil {
			return fmt.Errorf("store: remove e-mails of contacts: %w", err)
		}
	}
	return nil
}

// markOrphans fills OrphanedEmails: the removed addresses that no contact
// of the tenant holds after the batch. The holders' entries (and the gaps
// where they would be) are locked, as emailHeld does.
func markOrphans(ctx context.Context, q querier, tenant string, results []ApplyResult, removed []emailRow) error {
	if len(removed) == 0 {
		return nil
	}
	var emails []string
	for _, r := range removed {
		emails = append(emails, r.email)
	}
	slices.Sort(emails)
	emails = slices.Compact(emails)
	held := map[string]bool{}
	for chunk := range slices.Chunk(emails, maxRowsPerStatement) {
		args := []any{tenant}
		for _, e := range chunk {
			args = append(args, e)
		}
		rows, err := q.QueryContext(ctx, `SELECT email FROM contact_emails WHERE tenant = ? AND email IN (`+
			placeholders("?", len(chunk))+`) FOR UPDATE`, args...)
		if err != nil {
			return fmt.Errorf("store: look up holders of e-mails: %w", err)
		}
		for rows.Next() {
			var e string
			if err := rows.Scan(&e); err != nil {
				rows.Close()
				return err
			}
			held[e] = true
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("store: look up holders of e-mails: %w", err)
		}
	}
	for i := range results {
		for _, e := range results[i].RemovedEmails {
			if !held[e] {
				results[i].OrphanedEmails = append(results[i].OrphanedEmails, e)
			}
		}
	}
	return nil
}

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
