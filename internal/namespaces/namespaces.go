// Package namespaces is the --namespaces flag shared by the manager, the
// webhook server and the worker, and the cache configuration it becomes:
// the three processes must watch the same namespaces as the Roles the
// chart grants there, or a cache would try to list where it may not.
package namespaces

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// FlagUsage is the help text of --namespaces.
const FlagUsage = "comma-separated namespaces to watch (default: all); RBAC must grant the process's permissions in each"

// List is a flag.Value holding namespace names; empty means all namespaces.
type List []string

// String implements flag.Value.
func (l *List) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value: a comma-separated list of namespace names.
// Blank entries are skipped; an invalid name is an error naming it, so a
// typo stops the process instead of watching nothing.
func (l *List) Set(s string) error {
	var out List
	for _, ns := range strings.Split(s, ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	*l = out
	return nil
}

// CacheConfig is a controller-runtime cache's DefaultNamespaces for the
// list: nil (every namespace) when it is empty.
func CacheConfig(l []string) map[string]cache.Config {
	if len(l) == 0 {
		return nil
	}
	m := make(map[string]cache.Config, len(l))
	for _, ns := range l {
		m[ns] = cache.Config{}
	}
	return m
}
