// Package v1alpha1 holds the API of the kommo-unisender operator: a tenant is
// a KommoIntegration (how to reach and authorize one Kommo account) plus a
// UnisenderBinding (which Unisender list its contacts go to, and how).
//
// +kubebuilder:object:generate=true
// +groupName=sync.kommo-unisender.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of these objects.
	GroupVersion = schema.GroupVersion{Group: "sync.kommo-unisender.io", Version: "v1alpha1"}

	// SchemeBuilder registers the Go types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
