// Package writeback shows in Kommo what Unisender knows of a list's
// addresses (issue #17): opt-outs, spam complaints and bounces become a tag
// and a note on every Kommo contact holding the address, and an address
// active again loses the tag and gets a note.
//
// What to show is always read from Unisender's verified API: a hook
// delivery only names addresses, which the worker reads with getContact
// (see ReadStates), and the resync's pull exports the list's statuses (Pull).
// Both end in Apply, the one path by which anything is written to Kommo:
// under the tenant's lock, it compares each address's outcome with what the
// store recorded as written (writeback_marks), finds the Kommo contacts
// holding a changed address, writes tags and notes in batches within the
// account's Kommo budget, and records what it wrote. The same outcome
// reported again writes nothing.
package writeback

import (
	"context"
	"fmt"
	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
	"maps"
	"slices"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// NoteService is the author Kommo shows on the notes.
const NoteService = "Unisender"

// Kommo is the part of the Kommo client the write-back uses; each call
// takes from the account's shared request budget.
type Kommo interface {
	ContactsWithEmail(ctx context.Context, email string) ([]kommo.Contact, error)
	PatchTags(ctx context.Context, patches []kommo.TagPatch) error
	AddNotes(ctx context.Context, notes []kommo.Note) error
	EnsureTextField(ctx context.Context, name string) (int64, error)
}

// Target is one tenant's write-back: its spec, its list and its clients.
type Target struct {
	Tenant    string // "namespace/name"
	Spec      *v1alpha1.WriteBack
	ListID    int64
	Kommo     Kommo
	Unisender Unisender
}

// State is what Unisender says of one address now: the reported outcome
// it has, or "" when it has none (active, or an outcome not reported).
type State struct {
	Email   string
	Outcome v1alpha1.WriteBackOutcome
}

// KommoError marks a failed Kommo request, which callers classify as
// Kommo's (a token being refreshed, a blocked account) rather than the
// store's or Unisender's.
type KommoError struct{ err error }

func (e *KommoError) Error() string { return e.err.Error() }
func (e *KommoError) Unwrap() error { return e.err }

// Result counts what Apply wrote.
type Result struct {
	Marked   int // addresses given an outcome's tag
	Cleared  int // addresses whose tag was removed
	Contacts int // Kommo contacts patched
}

// Apply writes to Kommo the states that differ from what was written
// before, and records them. The caller holds the tenant's lock. A failure
// records nothing: the retry writes again (tags_to_add is idempotent; a
// crash between the writes and the record can repeat a note).
func Apply(ctx context.Context, st *store.Store, tg Target, states []State) (Result, error) {
	latest := map[string]State{}
	for _, s := range states {
		s.Email = emailaddr.Normalize(s.Email)
		if s.Email != "" {
			latest[s.Email] = s
		}
	}
	marks, err := st.WriteBackMarks(ctx, tg.Tenant, slices.Sorted(maps.Keys(latest)))
	if err != nil {
		return Result{}, err
	}
	w := newWrites(tg, time.Now().UTC())
	for _, email := range slices.Sorted(maps.Keys(latest)) {
		shown := v1alpha1.WriteBackOutcome(marks[email].Outcome)
		if now := latest[email].Outcome; now != shown {
			if err := w.change(ctx, email, shown, now); err != nil {
				return Result{}, err
			}
		}
	}
	return w.flush(ctx, st)
}

// writes gathers the tag patches and notes of one Apply.
type writes struct {
	tg      Target
	at      time.Time
	patches []kommo.TagPatch
	notes   []kommo.Note
	marks   []store.WriteBackMark
	res     Result
	fieldID int64 // spec.writeBack.field's id, found (or created) once per Apply
}

func newWrites(tg Target, at time.Time) *writes { return &writes{tg: tg, at: at} }

// change plans the writes that take email from the outcome shown to now,
// on every Kommo contact holding it.
func (w *writes) change(ctx context.Context, email string, shown, now v1alpha1.WriteBackOutcome) error {
	holders, err := w.tg.Kommo.ContactsWithEmail(ctx, email)
	if err != nil {
		return &KommoError{fmt.Errorf("finding the Kommo contacts with an address: %w", err)}
	}
	var p kommo.TagPatch
	if now != "" {
		p.Add = []string{w.tg.Spec.Tag(now)}
		w.res.Marked++
	} else {
		w.res.Cleared++
	}
	if shown != "" {
		p.Delete = []string{w.tg.Spec.Tag(shown)}
	}
	if p.Fields, err = w.fieldWrites(ctx, now); err != nil {
		return err
	}
	for _, c := range holders {
		p.ID = c.ID
		w.patches = append(w.patches, p)
		if w.tg.Spec.NotesEnabled() {
			w.notes = append(w.notes, kommo.Note{ContactID: c.ID, Service: NoteService, Text: noteText(email, w.tg.ListID, now, w.at)})
		}
	}
	w.res.Contacts += len(holders)
	w.marks = append(w.marks, store.WriteBackMark{Email: email, Outcome: string(now), EventAt: w.at})
	return nil
}

// fieldWrites set spec.writeBack.field to the outcome (cleared for none),
// or are empty when no field is configured. The field is looked up, and
// created if missing, at the first change of the Apply.
func (w *writes) fieldWrites(ctx context.Context, now v1alpha1.WriteBackOutcome) ([]kommo.FieldWrite, error) {
	if w.tg.Spec.Field == "" {
		return nil, nil
	}
	if w.fieldID == 0 {
		id, err := w.tg.Kommo.EnsureTextField(ctx, w.tg.Spec.Field)
		if err != nil {
			return nil, &KommoError{fmt.Errorf("finding or creating the write-back's Kommo field: %w", err)}
		}
		w.fieldID = id
	}
	return []kommo.FieldWrite{{FieldID: w.fieldID, Value: string(now)}}, nil
}

// flush sends the patches and notes in batches, then records the marks.
func (w *writes) flush(ctx context.Context, st *store.Store) (Result, error) {
	if len(w.patches) > 0 {
		if err := w.tg.Kommo.PatchTags(ctx, w.patches); err != nil {
			return Result{}, &KommoError{fmt.Errorf("writing the outcomes' tags to Kommo: %w", err)}
		}
	}
	if len(w.notes) > 0 {
		if err := w.tg.Kommo.AddNotes(ctx, w.notes); err != nil {
			return Result{}, &KommoError{fmt.Errorf("writing the outcomes' notes to Kommo: %w", err)}
		}
	}
	if err := st.RecordWriteBack(ctx, w.tg.Tenant, w.marks); err != nil {
		return Result{}, err
	}
	return w.res, nil
}

// noteText says what happened to the address, in which list, and when.
func noteText(email string, listID int64, now v1alpha1.WriteBackOutcome, at time.Time) string {
	when := at.Format("2006-01-02 15:04 UTC")
	if now == "" {
		return fmt.Sprintf("%s is active again in Unisender list %d (resubscribed), as of %s", email, listID, when)
	}
	return fmt.Sprintf("%s: %s in Unisender list %d, as of %s", email, describe(now), listID, when)
}

func describe(o v1alpha1.WriteBackOutcome) string {
	switch o {
	case v1alpha1.OutcomeUnsubscribed:
		return "unsubscribed"
	case v1alpha1.OutcomeBlocked:
		return "blocked (spam complaint)"
	case v1alpha1.OutcomeUnreachable:
		return "unreachable (bounce)"
	case v1alpha1.OutcomeTempUnreachable:
		return "temporarily unreachable (soft bounce)"
	case v1alpha1.OutcomeMailboxFull:
		return "mailbox full (bounce)"
	case v1alpha1.OutcomeSpamRejected:
		return "rejected as spam"
	}
	return string(o)
}
