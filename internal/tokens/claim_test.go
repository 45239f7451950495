package tokens

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

var kube *testenv.Kube

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithKube(m, nil, &kube))
}

func setup(t *testing.T, prefix string) (client.Client, *corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(kube.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A generated name: the tests can run again (-count) on one API server.
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: nsObj.Name, Name: SecretName("acme"),
		Labels: map[string]string{ManagedLabel: ManagedLabelValue}}}
	Pair{AccessToken: "a0", RefreshToken: "r0", ExpiresAt: time.Now().Add(time.Hour)}.Store(s)
	if err := c.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestClaimIsExclusiveAndPersistNeedsTheClaimsVersion(t *testing.T) {
	ctx := context.Background()
	c, s := setup(t, "claim-exclusive")
	now := time.Now()
	a := &Writer{Client: c, Holder: "a", TTL: time.Minute, Now: func() time.Time { return now }}
	b := &Writer{Client: c, Holder: "b", TTL: time.Minute, Now: func() time.Time { return now }}

	sa, sb := s.DeepCopy(), s.DeepCopy() // both read the same version
	claim, err := a.Claim(ctx, sa)
	if err != nil {
		t.Fatal(err)
	}
	if claim.Holder != "a" || !claim.Deadline.Equal(now.Add(time.Minute)) {
		t.Fatalf("claim = %+v", claim)
	}
	// b read before a's claim: its claim is refused by the resourceVersion.
	if _, err := b.Claim(ctx, sb); !apierrors.IsConflict(err) {
		t.Fatalf("stale claim: %v, want Conflict", err)
	}
	// b reads again and sees a's live claim: refused without writing.
	if err := c.Get(ctx, client.ObjectKeyFromObject(s), sb); err != nil {
		t.Fatal(err)
	}
	rv := sb.ResourceVersion
	var claimed *ClaimedError
	if _, err := b.Claim(ctx, sb); !errors.As(err, &claimed) || claimed.Holder != "a" {
		t.Fatalf("claim over a live claim: %v", err)
	}
	if sb.ResourceVersion != rv {
		t.Fatal("a refused claim wrote the Secret")
	}

	// a persists with its claim's version; the claim is gone.
	if err := a.Persist(ctx, sa, Pair{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: now.Add(2 * time.Hour)}, map[string]string{CodeHashAnnotation: "h"}); err != nil {
		t.Fatal(err)
	}
	got := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(s), got); err != nil {
		t.Fatal(err)
	}
	p, _ := FromSecret(got)
	if _, ok := ClaimOf(got); ok || p.RefreshToken != "r1" || got.Annotations[CodeHashAnnotation] != "h" {
		t.Fatalf("after persist: pair %+v, annotations %v", p, got.Annotations)
	}
	if _, ok := ObtainedAt(got); !ok {
		t.Fatal("obtained-at not recorded")
	}
}

func TestATakenOverClaimCannotPersist(t *testing.T) {
	ctx := context.Background()
	c, s := setup(t, "claim-takeover")
	now := time.Now()
	clock := func() time.Time { return now }
	a := &Writer{Client: c, Holder: "a", TTL: time.Second, Now: clock}
	b := &Writer{Client: c, Holder: "b", TTL: time.Second, Now: clock}

	sa := s.DeepCopy()
	if _, err := a.Claim(ctx, sa); err != nil {
		t.Fatal(err)
	}
	// a stalls past its deadline; b takes over.
	now = now.Add(2 * time.Second)
	sb := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(s), sb); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(ctx, sb); err != nil {
		t.Fatalf("claim over an expired claim: %v", err)
	}
	// a wakes up: its pair must not land.
	if err := a.Persist(ctx, sa, Pair{AccessToken: "late", RefreshToken: "late"}, nil); !apierrors.IsConflict(err) {
		t.Fatalf("late persist: %v, want Conflict", err)
	}
	if err := b.Persist(ctx, sb, Pair{AccessToken: "b1", RefreshToken: "rb1"}, nil); err != nil {
		t.Fatal(err)
	}
	got := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(s), got); err != nil {
		t.Fatal(err)
	}
	if p, _ := FromSecret(got); p.RefreshToken != "rb1" {
		t.Fatalf("stored %q", p.RefreshToken)
	}
}

func TestReleaseKeepsThePair(t *testing.T) {
	ctx := context.Background()
	c, s := setup(t, "claim-release")
	w := &Writer{Client: c, Holder: "a", TTL: time.Minute, Now: time.Now}
	if _, err := w.Claim(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Release(ctx, s, map[string]string{CodeHashAnnotation: "dead"}); err != nil {
		t.Fatal(err)
	}
	got := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(s), got); err != nil {
		t.Fatal(err)
	}
	if p, _ := FromSecret(got); p.RefreshToken != "r0" {
		t.Fatalf("pair changed: %+v", p)
	}
	if _, ok := ClaimOf(got); ok || got.Annotations[CodeHashAnnotation] != "dead" {
		t.Fatalf("annotations %v", got.Annotations)
	}
}

// Many writers race for the same Secret: exactly one claim per version wins.
func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	ctx := context.Background()
	c, s := setup(t, "claim-race")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &Writer{Client: c, Holder: string(rune('a' + i)), TTL: time.Minute, Now: time.Now}
			if _, err := w.Claim(ctx, s.DeepCopy()); err == nil {
				wins.Add(1)
			} else if !apierrors.IsConflict(err) {
				t.Errorf("claim %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d claims won", wins.Load())
	}
}

func TestSourceReadsOnlyWhatIsPersisted(t *testing.T) {
	ctx := context.Background()
	c, s := setup(t, "source")
	src := NewSource(c, s.Namespace, "acme")
	tok, err := src.Token(ctx)
	if err != nil || tok != "a0" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	// A claim in flight changes nothing for readers.
	w := &Writer{Client: c, Holder: "a", TTL: time.Minute, Now: time.Now}
	if _, err := w.Claim(ctx, s); err != nil {
		t.Fatal(err)
	}
	if tok, _ := src.Token(ctx); tok != "a0" {
		t.Fatalf("during a claim Token = %q", tok)
	}
	if err := w.Persist(ctx, s, Pair{AccessToken: "ACCESS-SECRET-1", RefreshToken: "REFRESH-SECRET-1", ExpiresAt: time.Now().Add(-time.Second)}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = src.Token(ctx)
	if !errors.Is(err, ErrExpired) || strings.Contains(err.Error(), "SECRET-1") {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := NewSource(c, s.Namespace, "nope").Token(ctx); !errors.Is(err, ErrNoToken) {
		t.Fatalf("missing Secret: %v", err)
	}
}
