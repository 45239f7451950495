// Package v1alpha1 holds the API of the kommo-unisender operator: a tenant is
// a KommoIntegration (how to reach and authorize one Kommo account) plus a
// UnisenderBinding (which Unisender list its contacts go to, and how).
//
// The package depends only on k8s.io/apimachinery so that anything (the
// webhook server, the worker, tests) can import it cheaply.
//
// +kubebuilder:object:generate=true
// +groupName=sync.kommo-unisender.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of these objects.
	GroupVersion = schema.GroupVersion{Group: "sync.kommo-unisender.io", Version: "v1alpha1"}

	// SchemeBuilder registers the Go types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&KommoIntegration{}, &KommoIntegrationList{},
		&UnisenderBinding{}, &UnisenderBindingList{},
		&KommoApp{}, &KommoAppList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
