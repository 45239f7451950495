package v1alpha1

import "slices"

// WriteBackOutcome is what Unisender says of an address that Kommo's users
// should know: a global e-mail status (unsubscribed, blocked: a spam
// complaint or a block by the service) or an availability (a bounce).
// +kubebuilder:validation:Enum=unsubscribed;blocked;unreachable;temp_unreachable;mailbox_full;spam_rejected
type WriteBackOutcome string

// Outcomes of WriteBack.
const (
	OutcomeUnsubscribed    WriteBackOutcome = "unsubscribed"
	OutcomeBlocked         WriteBackOutcome = "blocked"
	OutcomeUnreachable     WriteBackOutcome = "unreachable"
	OutcomeTempUnreachable WriteBackOutcome = "temp_unreachable"
	OutcomeMailboxFull     WriteBackOutcome = "mailbox_full"
	OutcomeSpamRejected    WriteBackOutcome = "spam_rejected"
)

// DefaultWriteBackOutcomes are reported when spec.writeBack.outcomes is
// empty: opt-outs, spam complaints and hard bounces.
var DefaultWriteBackOutcomes = []WriteBackOutcome{OutcomeUnsubscribed, OutcomeBlocked, OutcomeUnreachable, OutcomeMailboxFull}

// Defaults of WriteBack.
const (
	DefaultWriteBackTagPrefix = "unisender-"
	DefaultHookEventFormat    = "json_post"
)

// DefaultHookEvents are the setHook events registered when
// spec.writeBack.push.events is empty. Unisender's exact event names are
// unverified (see the reference): the pull on the resync interval keeps
// the result correct whatever the push delivers.
var DefaultHookEvents = []string{"subscribe", "unsubscribe", "email_status"}

// WriteBack reports Unisender's outcomes on the Kommo contacts holding the
// address: every Kommo contact of the account with that address gets a tag
// (added with tags_to_add, the contact's other tags stay) and, unless
// disabled, a note naming the list, the outcome and when. An address that
// becomes active again (resubscribed through Unisender's own form) loses
// the tag and gets a note. Writes are made by the worker within the
// account's Kommo budget, once per outcome and address.
//
// Unisender pushes events to the webhook server (setHook, unless
// push.disabled), and the resync reads the list's statuses back from
// Unisender (the pull), which alone brings Kommo to the same state.
type WriteBack struct {
	// outcomes to report; empty: unsubscribed, blocked, unreachable and
	// mailbox_full.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=6
	Outcomes []WriteBackOutcome `json:"outcomes,omitempty"`

	// tagPrefix: the tag an outcome adds is this prefix followed by the
	// outcome (unisender-unsubscribed). These tags are never synced to
	// Unisender, so writing them changes nothing there.
	// +optional
	// +kubebuilder:default="unisender-"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[^,]*$`
	TagPrefix string `json:"tagPrefix,omitempty"`

	// notes: add a service note to each contact marked or cleared.
	// +optional
	// +kubebuilder:default=true
	Notes *bool `json:"notes,omitempty"`

	// field: the name of a Kommo contact custom field (e.g. "Email
	// status") that each marked contact gets set to the outcome
	// (unsubscribed) and that is cleared when the address is active again.
	// Created as a text field when the account has none of that name.
	// Omitted: no field is written. Like the tags, the field is never
	// synced to Unisender, even when fieldMapping maps it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=100
	Field string `json:"field,omitempty"`

	// push configures Unisender's event hook.
	// +optional
	// +kubebuilder:default={}
	Push WriteBackPush `json:"push,omitzero"`
}

// WriteBackPush configures the Unisender event hook (setHook) registered
// for the binding at <public base URL>/unisender/hooks/<tenant>/<secret>.
// Unisender's push contract is partly unverified, hence these knobs.
type WriteBackPush struct {
	// disabled: register no hook; the pull on the resync interval alone
	// reports the outcomes.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// eventFormat: setHook's event_format.
	// +optional
	// +kubebuilder:default=json_post
	// +kubebuilder:validation:Enum=json_post;http_get
	EventFormat string `json:"eventFormat,omitempty"`

	// events: setHook's events[]; empty: subscribe, unsubscribe,
	// email_status.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[a-z_]{1,40}$`
	Events []string `json:"events,omitempty"`
}

// ReportedOutcomes are the outcomes reported, defaults applied.
func (w *WriteBack) ReportedOutcomes() []WriteBackOutcome {
	if w == nil {
		return nil
	}
	if len(w.Outcomes) == 0 {
		return DefaultWriteBackOutcomes
	}
	return w.Outcomes
}

// Reports says whether outcome o is reported.
func (w *WriteBack) Reports(o WriteBackOutcome) bool {
	return slices.Contains(w.ReportedOutcomes(), o)
}

// Tag is the Kommo tag of outcome o.
func (w *WriteBack) Tag(o WriteBackOutcome) string {
	prefix := w.TagPrefix
	if prefix == "" {
		prefix = DefaultWriteBackTagPrefix
	}
	return prefix + string(o)
}

// Tags are the Kommo tags the write-back may add (one per reported
// outcome): the sync ignores them, so that our own writes cause no
// Unisender call.
func (w *WriteBack) Tags() []string {
	out := make([]string, 0, len(w.ReportedOutcomes()))
	for _, o := range w.ReportedOutcomes() {
		out = append(out, w.Tag(o))
	}
	return out
}

// NotesEnabled: notes are added (the default).
func (w *WriteBack) NotesEnabled() bool { return w.Notes == nil || *w.Notes }

// PushEnabled: the Unisender hook is registered.
func (w *WriteBack) PushEnabled() bool { return w != nil && !w.Push.Disabled }

// HookEvents are setHook's events, defaults applied.
func (p WriteBackPush) HookEvents() []string {
	if len(p.Events) == 0 {
		return DefaultHookEvents
	}
	return p.Events
}

// HookEventFormat is setHook's event_format, default applied.
func (p WriteBackPush) HookEventFormat() string {
	if p.EventFormat == "" {
		return DefaultHookEventFormat
	}
	return p.EventFormat
}

// ConditionUnisenderHookRegistered (UnisenderBinding with spec.writeBack):
// Unisender's event hook was registered (setHook, status active) at the
// last resync. The hook's state cannot be read back (listHooks is
// unverified), so each resync registers it again, which restarts a hook
// Unisender stopped.
const ConditionUnisenderHookRegistered = "UnisenderHookRegistered"

// ReasonHookRegistrationFailed: setHook failed; the pull still reports
// the outcomes on the resync interval.
const ReasonHookRegistrationFailed = "HookRegistrationFailed"

// ReasonUnisenderHookRegistered (event): Unisender's event hook was
// registered for the first time.
const ReasonUnisenderHookRegistered = "UnisenderHookRegistered"
