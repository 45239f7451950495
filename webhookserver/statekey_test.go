package webhookserver_test

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

// The OAuth state key is random bytes: one that starts or ends with a
// whitespace byte (about one manager in twenty draws such a key) is read
// as it is, or every state the manager signs would be refused.
func TestStateKeyIsReadByteForByte(t *testing.T) {
	_, c := cluster(t)
	ctx := context.Background()
	const ns = "wh-operator-spaces"
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	key := append([]byte(" \t"), bytes.Repeat([]byte{0xa7}, 32)...)
	key = append(key, '\n')
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tokens.StateKeySecretName},
		Data: map[string][]byte{tokens.StateKeyKey: key}}))
	k, err := webhookserver.NewKube(kube.Config, webhookserver.KubeOptions{OperatorNamespace: ns})
	must(t, err)
	got, err := k.StateKey(ctx)
	must(t, err)
	if !bytes.Equal(got, key) {
		t.Fatalf("the state key read back as %q, want the %d bytes stored (%q)", got, len(key), key)
	}
}
