package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults of UnisenderBindingSpec, also used by the controllers when a field
// is unset.
const (
	DefaultResyncInterval = time.Hour
	DefaultNameField      = "Name"
)

// UnisenderBindingSpec says where the contacts of one Kommo account go in
// Unisender, and how. One binding is one tenant.
//
// +kubebuilder:validation:XValidation:rule="!has(self.writeBack) || !has(self.selector) || !has(self.selector.tags) || !((has(self.selector.tags.anyOf) ? self.selector.tags.anyOf : []) + (has(self.selector.tags.allOf) ? self.selector.tags.allOf : []) + (has(self.selector.tags.noneOf) ? self.selector.tags.noneOf : [])).exists(t, t.startsWith(has(self.writeBack.tagPrefix) ? self.writeBack.tagPrefix : 'unisender-'))",message="spec.selector.tags must not name a tag of spec.writeBack (its tagPrefix): writing an outcome back to Kommo would move the contact in or out of the list",fieldPath=".selector.tags"
type UnisenderBindingSpec struct {
	// integrationRef names the KommoIntegration, in the same namespace, whose
	// contacts are synced. It cannot change: the webhook and the synced
	// contacts belong to that account; create a new binding instead.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="integrationRef is immutable: create a new UnisenderBinding for another Kommo account"
	IntegrationRef IntegrationReference `json:"integrationRef,omitzero"`

	// apiKeySecretRef holds the Unisender API key. With allowWidgetKey the
	// Kommo widget may write this Secret key.
	// +required
	APIKeySecretRef SecretKeySelector `json:"apiKeySecretRef,omitzero"`

	// list receives the contacts: an existing list by id, or a list found by
	// title and created when missing.
	// +required
	List ListSelector `json:"list,omitzero"`

	// fieldMapping says which Kommo contact data becomes which Unisender field.
	// +optional
	// +kubebuilder:default={}
	FieldMapping FieldMapping `json:"fieldMapping,omitzero"`

	// selector: which contacts of the account belong in the list (by tag,
	// custom field, or the stage of their leads); omitted: every contact.
	// +optional
	Selector *Selector `json:"selector,omitempty"`

	// emails: which of a contact's e-mail addresses are synced.
	// +optional
	// +kubebuilder:default=All
	Emails EmailSelection `json:"emails,omitempty"`

	// doubleOptin: whether addresses new to the list get Unisender's
	// double opt-in invitation letter.
	//
	// ConsentHeld (default): consent is already held; addresses are added
	// by import without any letter.
	//
	// Invite and InviteUnknown: every address this binding brings into its
	// list (one that no Kommo contact of the binding held before, by the
	// webhook sync, the initial import or a resync) gets one subscribe call
	// with double_optin 0 (Invite: always an invitation) or 4
	// (InviteUnknown: Unisender invites only addresses not already new or
	// active in the account's lists), after the import that added it. The
	// invitations are queued durably and sent in the background within the
	// API key's subscribe budget (300 per minute by default), so a large
	// import is invited over minutes without slowing the sync. An address
	// is invited at most once per binding: one that left the list and comes
	// back is not invited again once its invitation went out. An address
	// that left the list (contact deleted or address removed) before its
	// invitation went out is not invited. An address that unsubscribed or
	// was blocked in Unisender, or that Unisender refused, is never
	// invited: the invitation is recorded as failed. Addresses already in
	// the list when the binding switches to Invite are not invited; pending
	// invitations are dropped, never sent, when it switches back to
	// ConsentHeld.
	// +optional
	// +kubebuilder:default=ConsentHeld
	DoubleOptin DoubleOptin `json:"doubleOptin,omitempty"`

	// deletionPolicy: what becomes of an address in Unisender when it leaves
	// Kommo or the selector (contact deleted, the address removed from it,
	// or the contact no longer matching spec.selector, and no other live
	// matching contact of the tenant has it), and of the synced addresses when
	// this binding is deleted.
	// +optional
	// +kubebuilder:default=Exclude
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// initialImport copies every existing Kommo contact once, when the binding
	// is first ready.
	// +optional
	// +kubebuilder:default={}
	InitialImport InitialImport `json:"initialImport,omitzero"`

	// resyncInterval: how often changes are fetched from Kommo (incrementally,
	// by updated_at), contacts deleted in Kommo whose webhook was lost are
	// removed (one Kommo request per 250 synced contacts), and the webhook
	// is checked; 1m to 168h.
	// +optional
	// +kubebuilder:default="1h0m0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="resyncInterval must be a duration between 1m and 168h, such as 90s, 30m or 1h30m"
	ResyncInterval *metav1.Duration `json:"resyncInterval,omitempty"`

	// sweepMaxRemovalPercent guards the resync's removal of contacts deleted
	// in Kommo whose webhook was lost: when more than this share of the
	// synced contacts is gone at once, however few they are, the resync
	// removes none of them and the binding gets a SweepHeld Warning event
	// (a token for another Kommo account is the likelier cause). Once such
	// a removal is known to be right, raise it to 100 for one resync.
	// +optional
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	SweepMaxRemovalPercent int32 `json:"sweepMaxRemovalPercent,omitempty"`

	// sweepInterval: how often a resync also sweeps — reads every synced
	// contact by id (one Kommo request per 250) to remove those deleted in
	// Kommo whose webhook was lost, and evaluates a selector again on each;
	// 1m to 720h. Unset: every resync sweeps. A large account may sweep
	// less often than it resyncs: at 1,000,000 synced contacts a sweep is
	// 4,000 requests, 16% of Kommo's 7 requests/s over an hour. A reconcile
	// request, a re-registered webhook and a changed selector sweep at once.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="sweepInterval must be a duration between 1m and 720h, such as 6h or 24h"
	SweepInterval *metav1.Duration `json:"sweepInterval,omitempty"`

	// suspend pauses everything: no import, no resync, and webhook events
	// for this tenant are not processed.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// allowWidgetKey lets the Kommo widget, after its signed request is
	// verified, store the Unisender API key in apiKeySecretRef.
	// +optional
	AllowWidgetKey bool `json:"allowWidgetKey,omitempty"`

	// writeBack shows in Kommo what Unisender learns of the list's
	// addresses (opt-outs, spam complaints, bounces): omitted, nothing is
	// written to Kommo. See WriteBack.
	// +optional
	WriteBack *WriteBack `json:"writeBack,omitempty"`
}

// IntegrationReference names a KommoIntegration in the same namespace.
type IntegrationReference struct {
	// name of the KommoIntegration.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name,omitempty"`
}

// ListSelector picks the Unisender list: exactly one of id or title.
//
// +kubebuilder:validation:XValidation:rule="has(self.id) != has(self.title)",message="exactly one of id or title must be set"
type ListSelector struct {
	// id of an existing Unisender list.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ID int64 `json:"id,omitempty"`

	// title of the list; created when no list has it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Title string `json:"title,omitempty"`

	// shared lets other bindings sync into the same list (same Unisender
	// account and list), when they set it too. Without it, a second binding
	// on a list is refused (ListInUse; the older binding keeps the list),
	// because each would remove from the list what the other still holds.
	// With it, an address leaves the list only when no sharing binding's
	// Kommo contacts hold it any more.
	// +optional
	Shared bool `json:"shared,omitempty"`
}

// FieldMapping maps Kommo contact data to Unisender fields. E-mail addresses
// are always synced (see spec.emails). Field names follow Unisender's rule
// (a Latin letter, then letters, digits, _ and -) and must not be one of the
// special import columns (email, phone, tags, delete, email_*, phone_*),
// which a user field would shadow.
//
// +kubebuilder:validation:XValidation:rule="!has(self.customFields) || !self.customFields.exists(f, f.unisenderField == self.name)",message="a custom field must not use the Unisender field of the contact name",fieldPath=".customFields"
type FieldMapping struct {
	// name: the Unisender field that receives the contact's name.
	// +optional
	// +kubebuilder:default=Name
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_-]*$`
	// +kubebuilder:validation:XValidation:rule="!(self in ['email', 'phone', 'tags', 'delete']) && !self.startsWith('email_') && !self.startsWith('phone_')",message="must not be a special Unisender column (email, phone, tags, delete, email_*, phone_*)"
	Name string `json:"name,omitempty"`

	// phone: sync the contact's phone numbers (Unisender's phone column).
	// +optional
	// +kubebuilder:default=true
	Phone *bool `json:"phone,omitempty"`

	// tags: sync the contact's Kommo tags as Unisender tags (at most 10).
	// +optional
	// +kubebuilder:default=true
	Tags *bool `json:"tags,omitempty"`

	// customFields: Kommo custom fields copied to Unisender user fields,
	// which are created when missing. One entry per Unisender field.
	// +optional
	// +listType=map
	// +listMapKey=unisenderField
	// +kubebuilder:validation:MaxItems=50
	CustomFields []CustomFieldMapping `json:"customFields,omitempty"`
}

// CustomFieldMapping copies one Kommo custom field, chosen by id or by code,
// into one Unisender field.
//
// +kubebuilder:validation:XValidation:rule="has(self.kommoFieldID) != has(self.kommoFieldCode)",message="exactly one of kommoFieldID or kommoFieldCode must be set"
type CustomFieldMapping struct {
	// kommoFieldID: the Kommo custom field's id.
	// +optional
	// +kubebuilder:validation:Minimum=1
	KommoFieldID int64 `json:"kommoFieldID,omitempty"`

	// kommoFieldCode: the Kommo custom field's code (e.g. POSITION).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_]*$`
	KommoFieldCode string `json:"kommoFieldCode,omitempty"`

	// unisenderField: the Unisender user field name (case-sensitive).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_-]*$`
	// +kubebuilder:validation:XValidation:rule="!(self in ['email', 'phone', 'tags', 'delete']) && !self.startsWith('email_') && !self.startsWith('phone_')",message="must not be a special Unisender column (email, phone, tags, delete, email_*, phone_*)"
	UnisenderField string `json:"unisenderField"`

	// type of the Unisender field when the operator creates it.
	// +optional
	// +kubebuilder:default=string
	Type UnisenderFieldType `json:"type,omitempty"`
}

// UnisenderFieldType is a Unisender user field type.
// +kubebuilder:validation:Enum=string;text;number;date;bool
type UnisenderFieldType string

// The Unisender field types.
const (
	FieldTypeString UnisenderFieldType = "string"
	FieldTypeText   UnisenderFieldType = "text"
	FieldTypeNumber UnisenderFieldType = "number"
	FieldTypeDate   UnisenderFieldType = "date"
	FieldTypeBool   UnisenderFieldType = "bool"
)

// EmailSelection says which of a contact's e-mail addresses are synced.
// +kubebuilder:validation:Enum=All;Primary
type EmailSelection string

const (
	// EmailsAll syncs every address of the contact.
	EmailsAll EmailSelection = "All"
	// EmailsPrimary syncs only the first address of the contact.
	EmailsPrimary EmailSelection = "Primary"
)

// DoubleOptin is Unisender's double_optin argument, by name:
// Invite = 0 (send an invitation letter), ConsentHeld = 3 (consent is
// already held: add without a letter), InviteUnknown = 4 (add contacts that
// are already new or active in your lists, invite the others).
// +kubebuilder:validation:Enum=Invite;ConsentHeld;InviteUnknown
type DoubleOptin string

// The double opt-in modes.
const (
	DoubleOptinInvite        DoubleOptin = "Invite"
	DoubleOptinConsentHeld   DoubleOptin = "ConsentHeld"
	DoubleOptinInviteUnknown DoubleOptin = "InviteUnknown"
)

// APIValue is the double_optin value sent to Unisender; an unset mode means
// the default, ConsentHeld (3).
func (d DoubleOptin) APIValue() int {
	switch d {
	case DoubleOptinInvite:
		return 0
	case DoubleOptinInviteUnknown:
		return 4
	default:
		return 3
	}
}

// Invites reports whether addresses new to the list get an invitation
// (Invite or InviteUnknown).
func (d DoubleOptin) Invites() bool {
	return d == DoubleOptinInvite || d == DoubleOptinInviteUnknown
}

// DeletionPolicy says what becomes of an address in Unisender when it leaves
// Kommo.
// +kubebuilder:validation:Enum=Exclude;Delete;Keep
type DeletionPolicy string

const (
	// DeletionPolicyExclude removes the address from the list without
	// marking it unsubscribed, so it can be added again (Unisender exclude).
	DeletionPolicyExclude DeletionPolicy = "Exclude"
	// DeletionPolicyDelete deletes the contact from the Unisender account.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyKeep leaves the address in the list.
	DeletionPolicyKeep DeletionPolicy = "Keep"
)

// InitialImport configures the one-time import of existing contacts.
type InitialImport struct {
	// enabled: import every existing Kommo contact once.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
}

// UnisenderBindingStatus is what the operator observed.
type UnisenderBindingStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, KeyValid, WebhookRegistered, Imported, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// failedAttempts and lastFailureTime: the retry record.
	RetryStatus `json:",inline"`

	// listID of the Unisender list in use (spec.list.id, or the list found
	// or created by title).
	// +optional
	ListID int64 `json:"listID,omitempty"`

	// listKeyID names the Unisender API key the list is used with (a hash
	// prefix, never the key): bindings with the same listKeyID and listID
	// sync into the same list (see spec.list.shared). Empty while the
	// binding has no list or was refused one (ListInUse).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ListKeyID string `json:"listKeyID,omitempty"`

	// webhookDestination registered in Kommo, with its secret path segment
	// masked, e.g. https://hooks.example.com/kommo/webhooks/ns.name/****.
	// +optional
	WebhookDestination string `json:"webhookDestination,omitempty"`

	// webhookSecretName: the operator-owned Secret holding the webhook URL secret.
	// +optional
	WebhookSecretName string `json:"webhookSecretName,omitempty"`

	// import: progress of the initial import.
	// +optional
	Import *ImportStatus `json:"import,omitempty"`

	// lastResyncTime: when the last periodic resync finished.
	// +optional
	LastResyncTime *metav1.Time `json:"lastResyncTime,omitempty"`

	// lastSweepTime: when the last resync that swept finished (see
	// spec.sweepInterval).
	// +optional
	LastSweepTime *metav1.Time `json:"lastSweepTime,omitempty"`

	// lastSyncedUpdatedAt: the highest Kommo updated_at (Unix seconds) seen
	// by an import or resync; the next resync asks for changes from there.
	// +optional
	LastSyncedUpdatedAt int64 `json:"lastSyncedUpdatedAt,omitempty"`

	// selector: spec.selector resolved, and how many contacts it selects.
	// +optional
	Selector *SelectorStatus `json:"selector,omitempty"`

	// lastHandledReconcileAt: the last value of the
	// sync.kommo-unisender.io/reconcile-requested-at annotation handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// health: the sync's figures, read from MySQL at most every 30 s and
	// written only when they change. `kommo-unisender report ns/name` lists
	// the refused and excluded records with their reasons.
	// +optional
	Health *SyncHealth `json:"health,omitempty"`
}

// SyncHealth is how a binding's sync is doing.
type SyncHealth struct {
	// contactsSynced: live Kommo contacts in the sync state.
	ContactsSynced int64 `json:"contactsSynced"`

	// inList: distinct addresses of those contacts in the Unisender list
	// (refused addresses are not).
	InList int64 `json:"inList"`

	// refused: addresses Unisender refused in an import's per-row log.
	Refused int64 `json:"refused"`

	// refusedByReason: refused addresses by Unisender's reason code
	// (invalid_email, role_address, …).
	// +optional
	RefusedByReason map[string]int64 `json:"refusedByReason,omitempty"`

	// excluded: contacts the sync left out (no e-mail, companies).
	Excluded int64 `json:"excluded"`

	// excludedByReason: excluded contacts by reason (no_email, company).
	// +optional
	ExcludedByReason map[string]int64 `json:"excludedByReason,omitempty"`

	// invitationsPending: double opt-in invitations not sent yet.
	InvitationsPending int64 `json:"invitationsPending"`

	// deadLetters: webhook jobs buried and not requeued
	// (`kommo-unisender deadletters list --tenant ns/name`).
	DeadLetters int64 `json:"deadLetters"`

	// lastEventAppliedTime: when a contact change last went through.
	// +optional
	LastEventAppliedTime *metav1.Time `json:"lastEventAppliedTime,omitempty"`

	// latencyP50 and latencyP99: webhook received → applied, over the
	// last hour (absent without webhook jobs in that hour).
	// +optional
	LatencyP50 *metav1.Duration `json:"latencyP50,omitempty"`
	// +optional
	LatencyP99 *metav1.Duration `json:"latencyP99,omitempty"`
}

// ImportPhase is the state of the initial import.
// +kubebuilder:validation:Enum=Pending;Running;Completed;Failed
type ImportPhase string

// The import phases.
const (
	ImportPending   ImportPhase = "Pending"
	ImportRunning   ImportPhase = "Running"
	ImportCompleted ImportPhase = "Completed"
	ImportFailed    ImportPhase = "Failed"
)

// ImportStatus is the progress of the initial import. The authoritative
// checkpoint is in MySQL; this is its summary for users.
type ImportStatus struct {
	// phase of the import.
	// +optional
	Phase ImportPhase `json:"phase,omitempty"`

	// imported: contacts sent to Unisender so far.
	// +optional
	Imported int64 `json:"imported,omitempty"`

	// total: contacts to import, when known (0 while unknown: Kommo does not
	// count them up front).
	// +optional
	Total int64 `json:"total,omitempty"`

	// startedAt: when the import started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// finishedAt: when the import completed or failed.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`

	// lastPage: the last Kommo page fully imported.
	// +optional
	LastPage int32 `json:"lastPage,omitempty"`
}

// UnisenderBinding sends one Kommo account's contacts to one Unisender list.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ub,categories=kommo-unisender
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="List",type=integer,JSONPath=`.status.listID`
// +kubebuilder:printcolumn:name="Matching",type=integer,JSONPath=`.status.selector.matching`
// +kubebuilder:printcolumn:name="In-List",type=integer,JSONPath=`.status.selector.inList`
// +kubebuilder:printcolumn:name="Import",type=string,JSONPath=`.status.import.phase`
// +kubebuilder:printcolumn:name="Imported",type=integer,JSONPath=`.status.import.imported`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.import.total`,priority=1
// +kubebuilder:printcolumn:name="In-Sync",type=integer,JSONPath=`.status.health.inList`
// +kubebuilder:printcolumn:name="Refused",type=integer,JSONPath=`.status.health.refused`
// +kubebuilder:printcolumn:name="Excluded",type=integer,JSONPath=`.status.health.excluded`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type UnisenderBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// +required
	Spec UnisenderBindingSpec `json:"spec"`

	// +optional
	Status UnisenderBindingStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// UnisenderBindingList is a list of UnisenderBinding.
type UnisenderBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []UnisenderBinding `json:"items"`
}

// GetConditions returns the status conditions.
func (in *UnisenderBinding) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *UnisenderBinding) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// Retries returns the status's record of transient failures.
func (in *UnisenderBinding) Retries() *RetryStatus { return &in.Status.RetryStatus }

// SetObservedGeneration records the generation the status describes.
func (in *UnisenderBinding) SetObservedGeneration(g int64) { in.Status.ObservedGeneration = g }

// OnSameList reports whether both bindings resolved the same Unisender
// list of the same account (status.listID and status.listKeyID).
func (in *UnisenderBinding) OnSameList(o *UnisenderBinding) bool {
	return in.Status.ListID != 0 && in.Status.ListKeyID != "" &&
		in.Status.ListID == o.Status.ListID && in.Status.ListKeyID == o.Status.ListKeyID &&
		(in.Namespace != o.Namespace || in.Name != o.Name)
}

// SharesListWith reports whether both bindings are on the same list and
// both opted into sharing it (spec.list.shared).
func (in *UnisenderBinding) SharesListWith(o *UnisenderBinding) bool {
	return in.OnSameList(o) && in.Spec.List.Shared && o.Spec.List.Shared
}

// OlderThan orders bindings by age, for which one keeps a list: by
// creation time, then namespace and name.
func (in *UnisenderBinding) OlderThan(o *UnisenderBinding) bool {
	if !in.CreationTimestamp.Equal(&o.CreationTimestamp) {
		return in.CreationTimestamp.Before(&o.CreationTimestamp)
	}
	if in.Namespace != o.Namespace {
		return in.Namespace < o.Namespace
	}
	return in.Name < o.Name
}

// ResyncPeriod is spec.resyncInterval, or the default when unset.
func (s *UnisenderBindingSpec) ResyncPeriod() time.Duration {
	if s.ResyncInterval != nil && s.ResyncInterval.Duration > 0 {
		return s.ResyncInterval.Duration
	}
	return DefaultResyncInterval
}

// SweepPeriod is spec.sweepInterval, or 0 when unset: every resync sweeps.
func (s *UnisenderBindingSpec) SweepPeriod() time.Duration {
	if s.SweepInterval != nil && s.SweepInterval.Duration > 0 {
		return s.SweepInterval.Duration
	}
	return 0
}

// DefaultSweepMaxRemovalPercent is spec.sweepMaxRemovalPercent's default.
const DefaultSweepMaxRemovalPercent = 50

// SweepHoldPercent is spec.sweepMaxRemovalPercent, or the default when unset.
func (s *UnisenderBindingSpec) SweepHoldPercent() int {
	if s.SweepMaxRemovalPercent > 0 {
		return int(s.SweepMaxRemovalPercent)
	}
	return DefaultSweepMaxRemovalPercent
}

// NameField is the Unisender field for the contact name, or the default.
func (m *FieldMapping) NameField() string {
	if m.Name != "" {
		return m.Name
	}
	return DefaultNameField
}

// PhoneEnabled reports whether phone numbers are synced (default true).
func (m *FieldMapping) PhoneEnabled() bool { return m.Phone == nil || *m.Phone }

// TagsEnabled reports whether tags are synced (default true).
func (m *FieldMapping) TagsEnabled() bool { return m.Tags == nil || *m.Tags }

// IsEnabled reports whether the initial import runs (default true).
func (i *InitialImport) IsEnabled() bool { return i.Enabled == nil || *i.Enabled }
