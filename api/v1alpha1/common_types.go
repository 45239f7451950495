package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretKeySelector points at one key of a Secret in the namespace of the
// object that holds the reference. Credentials are only ever referenced,
// never written into a spec.
type SecretKeySelector struct {
	// name of the Secret, in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name,omitempty"`

	// key within the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// RetryStatus is the record of transient failures both kinds keep in their
// status: it drives the exponential backoff of internal/outcome, and
// survives a manager restart or a change of leader.
type RetryStatus struct {
	// failedAttempts since the last success; drives the exponential backoff.
	// +optional
	FailedAttempts int32 `json:"failedAttempts,omitempty"`

	// lastFailureTime: when the last attempt failed.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`
}

// Condition types. Ready summarizes the others; Reconciling and Stalled are
// the kstatus conditions ("abnormal-true": present and True only while the
// object is being worked on or is stuck), so generic tools can compute
// health.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"

	// ConditionAuthorized (KommoIntegration): a usable Kommo token is stored.
	ConditionAuthorized = "Authorized"
	// ConditionSharedClientID (KommoIntegration, abnormal-true): another
	// namespace's integration has the same clientID and its own copy of
	// the secret; widget writes are refused (reason SharedClientID).
	ConditionSharedClientID = "SharedClientID"

	// ConditionKeyValid (UnisenderBinding): the Unisender API key was accepted.
	ConditionKeyValid = "KeyValid"
	// ConditionWebhookRegistered (UnisenderBinding): the Kommo webhook exists and is enabled.
	ConditionWebhookRegistered = "WebhookRegistered"
	// ConditionImported (UnisenderBinding): the initial import has finished.
	ConditionImported = "Imported"
)

// Condition reasons. Reasons for permanent failures (those that set Stalled)
// name what the user has to fix.
const (
	// ReasonSucceeded: the step or the whole object is done.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: work is under way (Reconciling=True).
	ReasonProgressing = "Progressing"
	// ReasonProgressingWithRetry: the last attempt failed transiently; retrying with backoff.
	ReasonProgressingWithRetry = "ProgressingWithRetry"
	// ReasonSuspended: spec.suspend is true; nothing is reconciled.
	ReasonSuspended = "Suspended"
	// ReasonSecretNotFound: a referenced Secret or key does not exist (yet).
	ReasonSecretNotFound = "SecretNotFound"

	// KommoIntegration.

	// ReasonWaitingForAuthorization: oauthCallback is chosen and no code has arrived yet.
	ReasonWaitingForAuthorization = "WaitingForAuthorization"
	// ReasonAuthorizationCodeInvalid: Kommo refused the code (expired after 20 minutes, or used): paste a new one.
	ReasonAuthorizationCodeInvalid = "AuthorizationCodeInvalid"
	// ReasonInvalidClient: Kommo refused clientID/client secret/redirectURI: fix the integration settings.
	ReasonInvalidClient = "InvalidClient"
	// ReasonTokenRevoked: the refresh token was revoked or reused: authorize again.
	ReasonTokenRevoked = "TokenRevoked"
	// ReasonTokenExpired: the long-lived token expired: generate a new one.
	ReasonTokenExpired = "TokenExpired"
	// ReasonAccountBlocked: Kommo answers 403 to every call (rate-limit block): contact Kommo support.
	ReasonAccountBlocked = "AccountBlocked"
	// ReasonRefreshFailed: a token refresh failed transiently.
	ReasonRefreshFailed = "RefreshFailed"
	// ReasonBaseURLNotAllowed: spec.baseURL is not on Kommo's domains over
	// https, nor allowed by the manager's --allowed-kommo-hosts: no request
	// is sent there (it would carry the client secret and tokens).
	ReasonBaseURLNotAllowed = "BaseURLNotAllowed"
	// ReasonAccountChanged: a code or token is for another Kommo account
	// than status.accountID; the tokens on record were kept.
	ReasonAccountChanged = "AccountChanged"
	// ReasonAuthorizationCodeIgnored (an event): a new code arrived while
	// the stored tokens work; it was not spent and nothing changed.
	ReasonAuthorizationCodeIgnored = "AuthorizationCodeIgnored"
	// ReasonSharedClientID: integrations in other namespaces use the same
	// clientID with their own copy of the client secret, so the webhook
	// server cannot tell who signed a widget token and refuses widget
	// writes: declare the app as a KommoApp and use spec.appRef.
	ReasonSharedClientID = "SharedClientID"
	// ReasonAppNotFound: spec.appRef names no KommoApp, or its Secret is missing.
	ReasonAppNotFound = "AppNotFound"
	// ReasonTokenSecretConflict: a Secret named like the token Secret exists
	// and is not the integration's.
	ReasonTokenSecretConflict = "TokenSecretConflict"
	// ReasonWaitingForBindings: deletion waits for the bindings that still
	// need the token to remove their Kommo webhooks.
	ReasonWaitingForBindings = "WaitingForBindings"
	// ReasonAuthorized (a Normal event): a token was obtained and stored.
	ReasonAuthorized = "Authorized"

	// UnisenderBinding.

	// ReasonIntegrationNotFound: spec.integrationRef names no KommoIntegration.
	ReasonIntegrationNotFound = "IntegrationNotFound"
	// ReasonIntegrationNotReady: the KommoIntegration is not Ready.
	ReasonIntegrationNotReady = "IntegrationNotReady"
	// ReasonInvalidAPIKey: Unisender answered invalid_api_key: fix the Secret.
	ReasonInvalidAPIKey = "InvalidAPIKey"
	// ReasonAccessDenied: Unisender answered access_denied for this key.
	ReasonAccessDenied = "AccessDenied"
	// ReasonNotEnoughMoney: Unisender answered not_enough_money: top up the account.
	ReasonNotEnoughMoney = "NotEnoughMoney"
	// ReasonListNotFound: spec.list.id names no list of this Unisender account.
	ReasonListNotFound = "ListNotFound"
	// ReasonListInUse: another (older) binding syncs into the same Unisender
	// list, and not both set spec.list.shared: use another list, or share it.
	ReasonListInUse = "ListInUse"
	// ReasonFieldTypeMismatch: a Unisender field exists with another type than the mapping asks.
	ReasonFieldTypeMismatch = "FieldTypeMismatch"
	// ReasonWebhookDisabled: Kommo disabled the webhook (too many failed deliveries); re-registering.
	ReasonWebhookDisabled = "WebhookDisabled"
	// ReasonPublicBaseURLMissing: the manager has no --public-base-url to
	// register the Kommo webhook under.
	ReasonPublicBaseURLMissing = "PublicBaseURLMissing"
	// ReasonWebhookSecretConflict: a Secret named like the binding's webhook
	// Secret exists and is not the binding's.
	ReasonWebhookSecretConflict = "WebhookSecretConflict"
	// ReasonSelectorUnresolved: spec.selector.leads names a pipeline or
	// status the account does not have.
	ReasonSelectorUnresolved = "SelectorUnresolved"
	// ReasonImportRunning: the initial import is in progress.
	ReasonImportRunning = "ImportRunning"
	// ReasonImportFailed: the initial import failed; see the condition message.
	ReasonImportFailed = "ImportFailed"
	// ReasonImportDisabled: spec.initialImport.enabled is false.
	ReasonImportDisabled = "ImportDisabled"
	// ReasonSweepHeld (an event): a resync found more than
	// spec.sweepMaxRemovalPercent of the synced contacts gone from Kommo and
	// removed none of them.
	ReasonSweepHeld = "SweepHeld"
	// ReasonAccountMismatch: the integration's token reads another Kommo
	// account than its status.accountID; the import or resync changed
	// nothing (no contact synced or removed): give it a token of the
	// account on record.
	ReasonAccountMismatch = "AccountMismatch"
	// ReasonEventsExpired (a Warning event): webhook events could not be
	// applied within the worker's bound (--max-job-age) and were dropped; a
	// resync was started to catch up with Kommo.
	ReasonEventsExpired = "EventsExpired"
)

// Event reasons that are no condition's reason. A Warning one is worth an
// alert (the README lists them).
const (
	// ReasonWebhookRegistered (Normal): the Kommo webhook was registered.
	ReasonWebhookRegistered = "WebhookRegistered"
	// ReasonWebhookReregistered (Warning): Kommo had disabled or lost the
	// webhook, so events were lost; it was registered again and a resync
	// catches up.
	ReasonWebhookReregistered = "WebhookReregistered"
	// ReasonListCreated (Normal): the Unisender list spec.list.title was created.
	ReasonListCreated = "ListCreated"
	// ReasonListChanged (Normal): the binding moved to another Unisender list.
	ReasonListChanged = "ListChanged"
	// ReasonFieldCreated (Normal): a Unisender field the mapping needs was created.
	ReasonFieldCreated = "FieldCreated"
	// ReasonImportStarted, ReasonImportResumed, ReasonImportCompleted and
	// ReasonResyncCompleted (Normal): an import or resync run started,
	// resumed from its checkpoint or finished.
	ReasonImportStarted   = "ImportStarted"
	ReasonImportResumed   = "ImportResumed"
	ReasonImportCompleted = "ImportCompleted"
	ReasonResyncCompleted = "ResyncCompleted"
	// ReasonCleanedUp (Normal): a deleted binding removed its webhook and
	// applied its deletion policy.
	ReasonCleanedUp = "CleanedUp"
	// ReasonWebhookNotRemoved (Warning): a deleted binding gave up removing
	// its Kommo webhook: remove it by hand.
	ReasonWebhookNotRemoved = "WebhookNotRemoved"
	// ReasonDeletionPolicyNotApplied (Warning): a deleted binding gave up
	// applying its deletion policy: the addresses stay in the list.
	ReasonDeletionPolicyNotApplied = "DeletionPolicyNotApplied"
)

const (
	// ReconcileRequestAnnotation forces a reconcile when its value changes
	// (any string, conventionally an RFC 3339 time). The value handled last is
	// copied to status.lastHandledReconcileAt, so a client can tell when its
	// request was served. On a UnisenderBinding whose initial import is done
	// it also starts a resync at once (unless one is running).
	ReconcileRequestAnnotation = "sync.kommo-unisender.io/reconcile-requested-at"

	// Finalizer guards the cleanup in Kommo and Unisender on deletion.
	Finalizer = "sync.kommo-unisender.io/finalizer"
)

// ReconcileRequestedAt returns the value of ReconcileRequestAnnotation, if set.
func ReconcileRequestedAt(obj metav1.Object) (string, bool) {
	v, ok := obj.GetAnnotations()[ReconcileRequestAnnotation]
	return v, ok
}
