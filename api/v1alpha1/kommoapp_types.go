package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KommoAppSpec is one public Kommo integration ("app") shared by many
// tenants: its client id, redirect URI and a reference to its client
// secret in the operator's namespace, where tenants have no access. Every
// KommoIntegration that names it in spec.appRef exchanges codes and
// refreshes tokens with these credentials, and the webhook server verifies
// widget tokens with the secret: since no tenant can read it, a valid
// signature proves Kommo issued the token for the account it names.
type KommoAppSpec struct {
	// clientID is the integration ID from Kommo's "Keys and scopes".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._~-]+$`
	ClientID string `json:"clientID,omitempty"`

	// clientSecretRef names the Secret holding the integration's secret
	// key. The Secret lives in the operator's namespace (the manager's and
	// webhook server's --operator-namespace), never in a tenant's.
	// +required
	ClientSecretRef SecretKeySelector `json:"clientSecretRef,omitzero"`

	// redirectURI registered for the integration in Kommo.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="redirectURI must be an absolute http or https URL"
	RedirectURI string `json:"redirectURI,omitempty"`
}

// KommoAppStatus is what the operator observed.
type KommoAppStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (the client secret is in place).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// integrations: how many KommoIntegrations reference the app.
	// +optional
	Integrations int32 `json:"integrations,omitempty"`
}

// KommoApp is a public Kommo integration shared by tenants, like
// cert-manager's ClusterIssuer: cluster-scoped, its secret out of the
// tenants' reach.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=kapp,categories=kommo-unisender
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.spec.clientID`
// +kubebuilder:printcolumn:name="Integrations",type=integer,JSONPath=`.status.integrations`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KommoApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// +required
	Spec KommoAppSpec `json:"spec"`

	// +optional
	Status KommoAppStatus `json:"status,omitzero"`
}

// GetConditions returns the status conditions.
func (in *KommoApp) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *KommoApp) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// +kubebuilder:object:root=true

// KommoAppList is a list of KommoApp.
type KommoAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []KommoApp `json:"items"`
}

// AppReference names a cluster-scoped KommoApp.
type AppReference struct {
	// name of the KommoApp.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`
}
