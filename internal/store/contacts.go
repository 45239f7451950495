package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
)

// ContactState is a Kommo contact as the sync rules see it, and as the store
// keeps the last applied version of it.
type ContactState struct {
	ID int64
	// UpdatedAt is Kommo's updated_at (Unix seconds), kept for people
	// reading the table and for the importer's cursor; it orders nothing.
	UpdatedAt int64
	// ReadAt is when the read of Kommo that produced this version began, in
	// microseconds on the database's clock (Store.Now): the version read
	// later wins, whatever order the processes commit in and whatever their
	// own clocks say. A tombstone's ReadAt is when Kommo was asked and
	// answered that the contact is gone.
	ReadAt  int64
	Deleted bool
	// OutsideSegment is set when the contact does not match its binding's
	// selector: it then holds no address of the list (Emails is empty).
	OutsideSegment bool
	// Emails are normalised by the store (trimmed, lower-cased, de-duplicated,
	// sorted); a deleted contact has none.
	Emails []string
	Name   string
	Phone  string
	Tags   []string          // normalised: de-duplicated and sorted
	Fields map[string]string // mapped custom fields; nil and empty are equal
	// SyncedAt is set by the store: when this version was applied.
	SyncedAt time.Time
}

// ApplyResult tells the sync rules what a contact event changed.
type ApplyResult struct {
	// Applied is false when the version lost to the stored one: read
	// earlier than it, or the same content. Nothing needs to reach
	// Unisender; a later read of the same content only moves the stored
	// read time.
	Applied bool
	// Previous is the stored version before the event (also when not
	// applied); nil for a contact never seen.
	Previous *ContactState
	// AddedEmails are the contact's addresses that it did not have before.
	AddedEmails []string
	// RemovedEmails are the addresses the contact no longer has (all of
	// them on a delete).
	RemovedEmails []string
	// OrphanedEmails are the removed addresses that no other live contact
	// of the tenant still holds: only these may leave the Unisender list.
	OrphanedEmails []string
	// NewEmails are the added addresses that no live contact of the tenant
	// held before (before the batch, for ApplyContacts): the addresses
	// this event brings into the Unisender list, as opposed to one more
	// holder of an address already there. An address that left the list
	// and comes back is new again.
	NewEmails []string
}

// maxEmailLen is the column width: RFC 5321's 64-byte local part, "@" and a
// 255-byte domain.
const maxEmailLen = 320

// ApplyContact applies one contact version, read from Kommo at ReadAt:
//
//   - a version read before the stored one is stale and ignored (the store
//     already holds what Kommo said later);
//   - a version with the same content as the stored one is not applied;
//     read later, it moves the stored read time (so that a read made in
//     between cannot win);
//   - anything else applies: a delete, an edit, and a live version after a
//     tombstone (Kommo restored the contact).
//
// A delete keeps a tombstone row so that a version read before it cannot
// resurrect the contact. The contact row is locked (SELECT … FOR UPDATE)
// for the rest of the transaction, and so are the e-mail map entries of the
// removed addresses, so concurrent events for the same tenant cannot both
// conclude an address is still held elsewhere.
func (t *Tx) ApplyContact(ctx context.Context, tenant string, c ContactState) (ApplyResult, error) {
	if err := checkTenant(tenant); err != nil {
		return ApplyResult{}, err
	}
	in, err := normalizeContact(c)
	if err != nil {
		return ApplyResult{}, err
	}
	prev, err := readContact(ctx, t.tx, tenant, in.ID, true)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return ApplyResult{}, err
	}
	res := ApplyResult{Previous: prev}
	switch decide(in, prev) {
	case skip:
		return res, nil
	case touch:
		return res, touchContact(ctx, t.tx, tenant, in)
	}
	res.Applied = true
	if err := writeContact(ctx, t.tx, tenant, in); err != nil {
		return ApplyResult{}, err
	}
	var before []string
	if prev != nil {
		before = prev.Emails
	}
	res.AddedEmails, res.RemovedEmails = diffSorted(before, in.Emails)
	heldBefore, err := heldEmails(ctx, t.tx, tenant, res.AddedEmails)
	if err != nil {
		return ApplyResult{}, err
	}
	results := []ApplyResult{res}
	markNew(results, heldBefore)
	res = results[0]
	if err := addEmails(ctx, t.tx, tenant, in.ID, res.AddedEmails); err != nil {
		return ApplyResult{}, err
	}
	if err := removeEmails(ctx, t.tx, tenant, in.ID, res.RemovedEmails); err != nil {
		return ApplyResult{}, err
	}
	for _, email := range res.RemovedEmails {
		held, err := emailHeld(ctx, t.tx, tenant, email)
		if err != nil {
			return ApplyResult{}, err
		}
		if !held {
			res.OrphanedEmails = append(res.OrphanedEmails, email)
		}
	}
	return res, nil
}

// verdict is what becomes of an incoming version.
type verdict int

const (
	// skip: read before the stored version (stale), or at the same time
	// with the same content.
	skip verdict = iota
	// touch: read later with the same content. Nothing changes for
	// Unisender, but the stored read time (and Kommo's updated_at) move to
	// this read, so that a read made between the stored one and this one
	// and committed after it cannot win: without the touch, a stale read
	// of an older state would replace the current one.
	touch
	// write: the later read says something else (or the contact is new).
	write
)

// decide decides between an incoming version and the stored one: the later
// read wins; when it says the same, only the read time moves.
func decide(in ContactState, prev *ContactState) verdict {
	switch {
	case prev == nil:
		return write
	case in.ReadAt < prev.ReadAt:
		return skip
	case !sameContent(in, *prev):
		return write
	case in.ReadAt > prev.ReadAt:
		return touch
	}
	return skip
}

// touchContact moves a stored version's read time (and Kommo's updated_at)
// to a later read that found the same content; synced_at stays: nothing was
// synced.
func touchContact(ctx context.Context, q querier, tenant string, c ContactState) error {
	_, err := q.ExecContext(ctx, `UPDATE contact_state SET read_at = ?, updated_at = ?
		WHERE tenant = ? AND contact_id = ?`, c.ReadAt, c.UpdatedAt, tenant, c.ID)
	if err != nil {
		return fmt.Errorf("store: touch contact %d: %w", c.ID, err)
	}
	return nil
}

func sameContent(a, b ContactState) bool {
	return a.Deleted == b.Deleted && a.OutsideSegment == b.OutsideSegment && a.Name == b.Name && a.Phone == b.Phone &&
		slices.Equal(a.Emails, b.Emails) && slices.Equal(a.Tags, b.Tags) &&
		maps.Equal(a.Fields, b.Fields)
}

// normalizeContact returns a copy of c in the form the store keeps and
// compares: sorted unique e-mails and tags, no e-mails on a tombstone, nil
// for empty collections.
func normalizeContact(c ContactState) (ContactState, error) {
	if c.ID <= 0 {
		return ContactState{}, fmt.Errorf("store: contact id %d: want a positive Kommo id", c.ID)
	}
	out := c
	out.SyncedAt = time.Time{}
	out.Emails = nil
	out.OutsideSegment = c.OutsideSegment && !c.Deleted
	if !c.Deleted && !out.OutsideSegment {
		for _, e := range c.Emails {
			e = emailaddr.Normalize(e)
			if e == "" {
				continue
			}
			if len(e) > maxEmailLen {
				return ContactState{}, fmt.Errorf("store: contact %d has an e-mail address longer than %d bytes", c.ID, maxEmailLen)
			}
			out.Emails = append(out.Emails, e)
		}
	}
	out.Emails = sortedUnique(out.Emails)
	out.Tags = sortedUnique(slices.Clone(c.Tags))
	if len(c.Fields) == 0 {
		out.Fields = nil
	} else {
		out.Fields = maps.Clone(c.Fields)
	}
	return out, nil
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// diffSorted returns what is in after but not before, and the reverse; both
// inputs are sorted and unique.
func diffSorted(before, after []string) (added, removed []string) {
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || (i < len(before) && before[i] < after[j]):
			removed = append(removed, before[i])
			i++
		case i == len(before) || after[j] < before[i]:
			added = append(added, after[j])
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}

// readContact loads one contact with its e-mails; forUpdate locks the row
// (or, for a contact never seen, the gap where it would go).
func readContact(ctx context.Context, q querier, tenant string, id int64, forUpdate bool) (*ContactState, error) {
	query := `SELECT contact_id, updated_at, read_at, deleted, outside_segment, name, phone, tags, fields, synced_at
		FROM contact_state WHERE tenant = ? AND contact_id = ?`
	if forUpdate {
		query += " FOR UPDATE"
	}
	c, err := scanContact(q.QueryRowContext(ctx, query, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: read contact %d: %w", id, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT email FROM contact_emails
		WHERE tenant = ? AND contact_id = ? ORDER BY email`, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("store: read e-mails of contact %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		c.Emails = append(c.Emails, e)
	}
	return &c, rows.Err()
}

type rowScanner interface{ Scan(dest ...any) error }

func scanContact(r rowScanner) (ContactState, error) {
	var c ContactState
	var tags, fields string
	if err := r.Scan(&c.ID, &c.UpdatedAt, &c.ReadAt, &c.Deleted, &c.OutsideSegment, &c.Name, &c.Phone, &tags, &fields, &c.SyncedAt); err != nil {
		return ContactState{}, err
	}
	if err := json.Unmarshal([]byte(tags), &c.Tags); err != nil {
		return ContactState{}, fmt.Errorf("contact %d: stored tags: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(fields), &c.Fields); err != nil {
		return ContactState{}, fmt.Errorf("contact %d: stored fields: %w", c.ID, err)
	}
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	if len(c.Fields) == 0 {
		c.Fields = nil
	}
	return c, nil
}

func writeContact(ctx context.Context, q querier, tenant string, c ContactState) error {
	tags, err := json.Marshal(nonNil(c.Tags))
	if err != nil {
		return err
	}
	fields, err := json.Marshal(c.Fields)
	if err != nil {
		return err
	}
	if c.Fields == nil {
		fields = []byte("{}")
	}
	at := now()
	_, err = q.ExecContext(ctx, `
		INSERT INTO contact_state (tenant, contact_id, updated_at, read_at, deleted, outside_segment, name, phone, tags, fields, synced_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE
			updated_at = ?, read_at = ?, deleted = ?, outside_segment = ?, name = ?, phone = ?, tags = ?, fields = ?, synced_at = ?`,
		tenant, c.ID, c.UpdatedAt, c.ReadAt, c.Deleted, c.OutsideSegment, c.Name, c.Phone, tags, fields, at,
		c.UpdatedAt, c.ReadAt, c.Deleted, c.OutsideSegment, c.Name, c.Phone, tags, fields, at)
	if err != nil {
		return fmt.Errorf("store: write contact %d: %w", c.ID, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func addEmails(ctx context.Context, q querier, tenant string, id int64, emails []string) error {
	if len(emails) == 0 {
		return nil
	}
	args := make([]any, 0, 3*len(emails))
	for _, e := range emails {
		args = append(args, tenant, id, e)
	}
	// The no-op update keeps a repeated insert harmless.
	query := `INSERT INTO contact_emails (tenant, contact_id, email) VALUES ` +
		placeholders("(?, ?, ?)", len(emails)) + ` ON DUPLICATE KEY UPDATE email = email`
	if _, err := q.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("store: add e-mails of contact %d: %w", id, err)
	}
	return nil
}

func removeEmails(ctx context.Context, q querier, tenant string, id int64, emails []string) error {
	if len(emails) == 0 {
		return nil
	}
	args := []any{tenant, id}
	for _, e := range emails {
		args = append(args, e)
	}
	query := `DELETE FROM contact_emails WHERE tenant = ? AND contact_id = ? AND email IN (` +
		placeholders("?", len(emails)) + `)`
	if _, err := q.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("store: remove e-mails of contact %d: %w", id, err)
	}
	return nil
}

// emailHeld reports whether any contact of the tenant holds email, locking
// the entries (and the index gap) so that no concurrent transaction can add
// or drop a holder before this one commits.
func emailHeld(ctx context.Context, q querier, tenant, email string) (bool, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT contact_id FROM contact_emails
		WHERE tenant = ? AND email = ? LIMIT 1 FOR UPDATE`, tenant, email).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: look up holders of an e-mail: %w", err)
	}
	return true, nil
}

func placeholders(one string, n int) string {
	return strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}

// GetContact returns the stored version of a contact, tombstones included,
// or ErrNotFound.
func (s *Store) GetContact(ctx context.Context, tenant string, id int64) (ContactState, error) {
	if err := checkTenant(tenant); err != nil {
		return ContactState{}, err
	}
	c, err := readContact(ctx, s.db, tenant, id, false)
	if err != nil {
		return ContactState{}, err
	}
	return *c, nil
}

// EmailHolders returns the ids of the tenant's live contacts that hold the
// address (normalised as emailaddr.Normalize does), in ascending order.
func (s *Store) EmailHolders(ctx context.Context, tenant, email string) ([]int64, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	return s.contactIDs(ctx, "e-mail holders", `SELECT contact_id FROM contact_emails
		WHERE tenant = ? AND email = ? ORDER BY contact_id`, tenant, emailaddr.Normalize(email))
}

// contactIDs runs a query of contact ids; what names it in errors.
func (s *Store) contactIDs(ctx context.Context, what, query string, args ...any) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// LiveContacts returns every non-deleted contact of the tenant with its
// e-mails, by ascending id: the state Unisender should mirror.
func (s *Store) LiveContacts(ctx context.Context, tenant string) ([]ContactState, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT contact_id, updated_at, read_at, deleted, outside_segment, name, phone, tags, fields, synced_at
		FROM contact_state WHERE tenant = ? AND deleted = FALSE ORDER BY contact_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: live contacts: %w", err)
	}
	var contacts []ContactState
	index := map[int64]int{}
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		index[c.ID] = len(contacts)
		contacts = append(contacts, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return contacts, s.attachEmails(ctx, tenant, contacts, index)
}

func (s *Store) attachEmails(ctx context.Context, tenant string, contacts []ContactState, index map[int64]int) error {
	rows, err := s.db.QueryContext(ctx, `SELECT contact_id, email FROM contact_emails
		WHERE tenant = ? ORDER BY contact_id, email`, tenant)
	if err != nil {
		return fmt.Errorf("store: live contacts' e-mails: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var e string
		if err := rows.Scan(&id, &e); err != nil {
			return err
		}
		if i, ok := index[id]; ok {
			contacts[i].Emails = append(contacts[i].Emails, e)
		}
	}
	return rows.Err()
}

// LiveContactIDs returns up to limit ids of the tenant's live contacts
// greater than after, in ascending order: a keyset page through what the
// store believes Kommo holds (the resync's deletion sweep checks them).
func (s *Store) LiveContactIDs(ctx context.Context, tenant string, after int64, limit int) ([]int64, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	return s.contactIDs(ctx, "live contact ids", `SELECT contact_id FROM contact_state
		WHERE tenant = ? AND deleted = FALSE AND contact_id > ? ORDER BY contact_id LIMIT ?`, tenant, after, limit)
}

// LiveAmong returns which of ids the store holds as live contacts of the
// tenant (Kommo had them when last read).
func (s *Store) LiveAmong(ctx context.Context, tenant string, ids []int64) (map[int64]bool, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	live := make(map[int64]bool, len(ids))
	for chunk := range slices.Chunk(ids, maxRowsPerStatement) {
		args := append([]any{tenant}, int64Args(chunk)...)
		found, err := s.contactIDs(ctx, "live contacts among ids", `SELECT contact_id FROM contact_state
			WHERE tenant = ? AND deleted = FALSE AND contact_id IN (`+placeholders("?", len(chunk))+`)`, args...)
		if err != nil {
			return nil, err
		}
		for _, id := range found {
			live[id] = true
		}
	}
	return live, nil
}

// CountLiveContacts returns how many live contacts the store holds for the
// tenant.
func (s *Store) CountLiveContacts(ctx context.Context, tenant string) (int64, error) {
	if err := checkTenant(tenant); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM contact_state WHERE tenant = ? AND deleted = FALSE`, tenant).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: counting live contacts: %w", err)
	}
	return n, nil
}

// Now returns the database's clock in microseconds, the one clock every
// process shares. A read of Kommo is stamped with it just before the
// request goes out (ContactState.ReadAt), so versions read by different
// processes are ordered whatever their own clocks say.
func (s *Store) Now(ctx context.Context) (int64, error) {
	var us int64
	err := s.db.QueryRowContext(ctx, `SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)`).Scan(&us)
	if err != nil {
		return 0, fmt.Errorf("store: reading the database clock: %w", err)
	}
	return us, nil
}

// EmailHeld reports whether a live contact of the tenant holds the address,
// locking the map entry for the rest of the transaction.
func (t *Tx) EmailHeld(ctx context.Context, tenant, email string) (bool, error) {
	if err := checkTenant(tenant); err != nil {
		return false, err
	}
	return emailHeld(ctx, t.tx, tenant, emailaddr.Normalize(email))
}
