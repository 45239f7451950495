package v1alpha1

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults of KommoIntegrationSpec, also used by the controllers when a field
// is unset (objects created before a default existed, or unit tests).
const (
	DefaultRequestsPerSecond = 7
	DefaultRefreshBefore     = time.Hour
	// KommoDomain is the API host suffix used with spec.subdomain.
	KommoDomain = "kommo.com"
)

// KommoIntegrationSpec says how to reach one Kommo account and how the
// operator gets its first token. The tokens themselves live in an
// operator-owned Secret (status.tokenSecretName), never in the spec or status.
//
// +kubebuilder:validation:XValidation:rule="has(self.subdomain) != has(self.baseURL)",message="exactly one of subdomain or baseURL must be set"
// +kubebuilder:validation:XValidation:rule="[has(self.authorizationCodeRef), has(self.oauthCallback), has(self.longLivedTokenRef)].filter(x, x).size() == 1",message="exactly one first-token source must be set: authorizationCodeRef, oauthCallback or longLivedTokenRef"
// +kubebuilder:validation:XValidation:rule="has(self.appRef) != has(self.clientID)",message="exactly one of appRef (a shared KommoApp) or clientID (with clientSecretRef and redirectURI) must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.appRef) || !(has(self.clientSecretRef) || has(self.redirectURI))",message="with appRef the KommoApp holds the client secret and redirect URI: remove clientSecretRef and redirectURI"
// +kubebuilder:validation:XValidation:rule="has(self.appRef) || has(self.clientSecretRef) || !(has(self.authorizationCodeRef) || has(self.oauthCallback))",message="clientSecretRef is required with authorizationCodeRef or oauthCallback: the code exchange and every refresh need it",fieldPath=".clientSecretRef",reason="FieldValueRequired"
// +kubebuilder:validation:XValidation:rule="has(self.appRef) || has(self.redirectURI) || !(has(self.authorizationCodeRef) || has(self.oauthCallback))",message="redirectURI is required with authorizationCodeRef or oauthCallback: Kommo checks it on the code exchange and every refresh",fieldPath=".redirectURI",reason="FieldValueRequired"
type KommoIntegrationSpec struct {
	// subdomain of the Kommo account: the API is https://<subdomain>.kommo.com.
	// Set this or baseURL.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
	Subdomain string `json:"subdomain,omitempty"`

	// baseURL of the account's API when it is not <subdomain>.kommo.com, for
	// example https://acme.amocrm.ru. The operator sends the client secret
	// and tokens there, so it must be on Kommo's domains (*.kommo.com,
	// *.amocrm.ru, *.amocrm.com) over https, unless the manager's and the
	// workers' --allowed-kommo-hosts allow another host (the sandbox: plain
	// http on loopback); otherwise the integration stalls with
	// BaseURLNotAllowed. Set this or subdomain.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="baseURL must be an absolute http or https URL"
	BaseURL string `json:"baseURL,omitempty"`

	// appRef names a cluster-scoped KommoApp: a public Kommo integration
	// shared by many tenants, whose client secret tenants cannot read. Set
	// this or clientID (with clientSecretRef and redirectURI).
	// +optional
	AppRef *AppReference `json:"appRef,omitempty"`

	// clientID is the integration ID from Kommo's "Keys and scopes", for an
	// integration of this tenant's own. Set this or appRef. Several
	// namespaces sharing one clientID with their own copies of the secret
	// cannot use the widget: use a KommoApp instead.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._~-]+$`
	ClientID string `json:"clientID,omitempty"`

	// clientSecretRef holds the integration's secret key. Required with
	// authorizationCodeRef and oauthCallback (code exchange, refresh); with a
	// long-lived token it is only needed to verify the widget's requests.
	// +optional
	ClientSecretRef *SecretKeySelector `json:"clientSecretRef,omitempty"`

	// redirectURI registered for the integration in Kommo. Required with
	// authorizationCodeRef and oauthCallback.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="redirectURI must be an absolute http or https URL"
	RedirectURI string `json:"redirectURI,omitempty"`

	// authorizationCodeRef: the first token comes from an authorization code
	// pasted into this Secret key. Codes expire 20 minutes after issue.
	// Exactly one of authorizationCodeRef, oauthCallback, longLivedTokenRef.
	// +optional
	AuthorizationCodeRef *SecretKeySelector `json:"authorizationCodeRef,omitempty"`

	// oauthCallback: the first token comes from the code that Kommo sends to
	// the operator's /oauth/callback route when an admin authorizes the
	// integration. Set it as `oauthCallback: {}`.
	// Exactly one of authorizationCodeRef, oauthCallback, longLivedTokenRef.
	// +optional
	OAuthCallback *OAuthCallbackSource `json:"oauthCallback,omitempty"`

	// longLivedTokenRef: a private integration's long-lived token. It cannot
	// be refreshed; when it expires the integration stalls until the Secret
	// holds a new one.
	// Exactly one of authorizationCodeRef, oauthCallback, longLivedTokenRef.
	// +optional
	LongLivedTokenRef *SecretKeySelector `json:"longLivedTokenRef,omitempty"`

	// rateLimit for calls to this Kommo account, shared by every component.
	// +optional
	// +kubebuilder:default={}
	RateLimit RateLimit `json:"rateLimit,omitzero"`

	// refreshBefore: how long before the access token expires it is
	// refreshed (1s to 24h; Kommo access tokens live 24h).
	// +optional
	// +kubebuilder:default="1h0m0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="refreshBefore must be a duration between 1s and 24h, such as 90s, 30m or 1h30m"
	RefreshBefore *metav1.Duration `json:"refreshBefore,omitempty"`

	// suspend stops every reconcile of this object; the token is not refreshed.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// OAuthCallbackSource selects the /oauth/callback flow. It has no settings
// yet; its presence is the choice (like `emptyDir: {}`).
type OAuthCallbackSource struct{}

// RateLimit bounds the calls made to one Kommo account.
type RateLimit struct {
	// requestsPerSecond: Kommo allows 7 per integration and 50 per account.
	// +optional
	// +kubebuilder:default=7
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	RequestsPerSecond int32 `json:"requestsPerSecond,omitempty"`
}

// KommoIntegrationStatus is what the operator observed.
type KommoIntegrationStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Authorized, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// accountID of the Kommo account the token belongs to.
	// +optional
	AccountID int64 `json:"accountID,omitempty"`

	// tokenSecretName: the operator-owned Secret holding the token pair.
	// +optional
	TokenSecretName string `json:"tokenSecretName,omitempty"`

	// authorizationURL (oauthCallback only): the Kommo consent page an
	// account admin opens to authorize the integration. Kommo then sends
	// the code to the operator's /oauth/callback route. It carries no
	// secret.
	// +optional
	AuthorizationURL string `json:"authorizationURL,omitempty"`

	// tokenExpiresAt: when the current access token expires.
	// +optional
	TokenExpiresAt *metav1.Time `json:"tokenExpiresAt,omitempty"`

	// lastRefreshTime: when a token was last obtained or refreshed.
	// +optional
	LastRefreshTime *metav1.Time `json:"lastRefreshTime,omitempty"`

	// failedAttempts and lastFailureTime: the retry record.
	RetryStatus `json:",inline"`

	// lastHandledReconcileAt: the last value of the
	// sync.kommo-unisender.io/reconcile-requested-at annotation handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// KommoIntegration is one Kommo account and the credentials to reach it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ki,categories=kommo-unisender
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Account",type=integer,JSONPath=`.status.accountID`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.tokenExpiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KommoIntegration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// +required
	Spec KommoIntegrationSpec `json:"spec"`

	// +optional
	Status KommoIntegrationStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// KommoIntegrationList is a list of KommoIntegration.
type KommoIntegrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []KommoIntegration `json:"items"`
}

// GetConditions returns the status conditions.
func (in *KommoIntegration) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *KommoIntegration) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// Retries returns the status's record of transient failures.
func (in *KommoIntegration) Retries() *RetryStatus { return &in.Status.RetryStatus }

// SetObservedGeneration records the generation the status describes.
func (in *KommoIntegration) SetObservedGeneration(g int64) { in.Status.ObservedGeneration = g }

// TokenSource names the way the first token is obtained.
type TokenSource string

// The first-token sources; exactly one is set in a valid spec.
const (
	TokenSourceAuthorizationCode TokenSource = "AuthorizationCode"
	TokenSourceOAuthCallback     TokenSource = "OAuthCallback"
	TokenSourceLongLivedToken    TokenSource = "LongLivedToken"
)

// TokenSource reports which first-token source the spec selects, or "" when
// none is set (the API server refuses such an object).
func (s *KommoIntegrationSpec) TokenSource() TokenSource {
	switch {
	case s.AuthorizationCodeRef != nil:
		return TokenSourceAuthorizationCode
	case s.OAuthCallback != nil:
		return TokenSourceOAuthCallback
	case s.LongLivedTokenRef != nil:
		return TokenSourceLongLivedToken
	}
	return ""
}

// APIBaseURL is the root of the account's API: baseURL when set, else
// https://<subdomain>.kommo.com. It has no trailing slash.
func (s *KommoIntegrationSpec) APIBaseURL() string {
	if s.BaseURL != "" {
		return strings.TrimRight(s.BaseURL, "/")
	}
	return "https://" + s.Subdomain + "." + KommoDomain
}

// RequestsPerSecond is the configured rate, or the default when unset.
func (s *KommoIntegrationSpec) RequestsPerSecond() int {
	if s.RateLimit.RequestsPerSecond > 0 {
		return int(s.RateLimit.RequestsPerSecond)
	}
	return DefaultRequestsPerSecond
}

// RefreshBeforeDuration is spec.refreshBefore, or the default when unset.
func (s *KommoIntegrationSpec) RefreshBeforeDuration() time.Duration {
	if s.RefreshBefore != nil && s.RefreshBefore.Duration > 0 {
		return s.RefreshBefore.Duration
	}
	return DefaultRefreshBefore
}
