// Package tenant names a tenant — one UnisenderBinding — the same way in the
// store, the queue, URLs, logs and metrics.
package tenant

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// Key identifies a tenant by its UnisenderBinding.
type Key struct {
	Namespace string
	Name      string
}

// FromNamespacedName converts a controller-runtime object key.
func FromNamespacedName(n types.NamespacedName) Key { return Key(n) }

// NamespacedName converts back to an object key.
func (k Key) NamespacedName() types.NamespacedName { return types.NamespacedName(k) }

// String is the form used in the store, the queue, logs and metrics: "ns/name".
func (k Key) String() string { return k.Namespace + "/" + k.Name }

// URLSegment is the form used in webhook URLs: "ns.name". A namespace is a
// DNS label and holds no dot, so the first dot separates the two.
func (k Key) URLSegment() string { return k.Namespace + "." + k.Name }

// Parse reads the "ns/name" form.
func Parse(s string) (Key, error) {
	ns, name, ok := strings.Cut(s, "/")
	return validated(Key{ns, name}, ok, s)
}

// ParseURLSegment reads the "ns.name" form.
func ParseURLSegment(s string) (Key, error) {
	ns, name, ok := strings.Cut(s, ".")
	return validated(Key{ns, name}, ok, s)
}

func validated(k Key, ok bool, s string) (Key, error) {
	if !ok || len(validation.IsDNS1123Label(k.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(k.Name)) > 0 {
		return Key{}, fmt.Errorf("invalid tenant %q: want <namespace>.<name> of a UnisenderBinding", truncate.Text(s, 80))
	}
	return k, nil
}
