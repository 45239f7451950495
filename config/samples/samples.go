// Package samples holds the sample manifests of this directory, so that
// `make dev` applies the same routed bindings users read here.
package samples

import _ "embed"

// RoutedBindings is sync_v1alpha1_routed_bindings.yaml: two bindings of one
// integration routing won and lost deals into two lists.
//
//go:embed sync_v1alpha1_routed_bindings.yaml
var RoutedBindings []byte
