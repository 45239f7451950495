package writeback

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // Unisender's hook digest
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the operator's database
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/controllers"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// within bounds a write-back through the system (hook → webhook server →
// queue → worker → Kommo): seconds, with room for a loaded machine.
const within = 30 * time.Second

type system struct {
	env    *devenv.Env
	listID int64
}

var bindingKey = client.ObjectKey{Namespace: devenv.SampleNamespace, Name: devenv.SampleBinding}

// start brings the system up with the sample tenant and spec.writeBack,
// and waits until its import is done and its hooks are registered.
func start(t *testing.T, ctx context.Context, o devenv.Options, wb *v1alpha1.WriteBack) *system {
	t.Helper()
	o.Sandbox, o.SandboxAccessTokenTTL = true, time.Hour
	env := devtest.Start(t, ctx, o)
	if err := env.ApplySampleTenant(ctx); err != nil {
		t.Fatal(err)
	}
	s := &system{env: env}
	s.updateBinding(t, ctx, func(b *v1alpha1.UnisenderBinding) { b.Spec.WriteBack = wb })
	devtest.WaitUntil(t, "the binding imported with its hooks", 3*time.Minute, func() (bool, string) {
		b := s.binding(t, ctx)
		st := b.Status
		ok := st.ObservedGeneration == b.Generation && st.Import != nil && st.Import.Phase == v1alpha1.ImportCompleted &&
			isTrue(st.Conditions, v1alpha1.ConditionWebhookRegistered) &&
			(!wb.PushEnabled() || isTrue(st.Conditions, v1alpha1.ConditionUnisenderHookRegistered))
		s.listID = st.ListID
		return ok, fmt.Sprintf("status %+v", st)
	})
	return s
}

func (s *system) binding(t *testing.T, ctx context.Context) *v1alpha1.UnisenderBinding {
	t.Helper()
	var b v1alpha1.UnisenderBinding
	if err := s.env.Client.Get(ctx, bindingKey, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

func (s *system) updateBinding(t *testing.T, ctx context.Context, mutate func(*v1alpha1.UnisenderBinding)) {
	t.Helper()
	devtest.WaitUntil(t, "the binding updated", 30*time.Second, func() (bool, string) {
		b := s.binding(t, ctx)
		mutate(b)
		err := s.env.Client.Update(ctx, b)
		return err == nil, fmt.Sprint(err)
	})
}

// requestReconcile asks for a reconcile, which registers the hook again
// and resyncs (pulling Unisender's statuses back).
func (s *system) requestReconcile(t *testing.T, ctx context.Context) {
	t.Helper()
	s.updateBinding(t, ctx, func(b *v1alpha1.UnisenderBinding) {
		if b.Annotations == nil {
			b.Annotations = map[string]string{}
		}
		b.Annotations[v1alpha1.ReconcileRequestAnnotation] = time.Now().UTC().Format(time.RFC3339Nano)
	})
}

func isTrue(conds []metav1.Condition, typ string) bool {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// seededContacts are the sandbox account's contacts with an e-mail.
func (s *system) seededContacts(t *testing.T) []kommoemu.AdminContact {
	t.Helper()
	var all []kommoemu.AdminContact
	s.kommo(t, http.MethodGet, "/contacts", nil, &all)
	return slices.DeleteFunc(all, func(c kommoemu.AdminContact) bool { return len(c.Emails) == 0 || c.Type == "company" })
}

func (s *system) contact(t *testing.T, id int64) kommoemu.AdminContact {
	t.Helper()
	for _, c := range s.seededContacts(t) {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no Kommo contact %d", id)
	return kommoemu.AdminContact{}
}

func (s *system) notes(t *testing.T, contactID int64) []kommoemu.Note {
	t.Helper()
	var all []kommoemu.Note
	s.kommo(t, http.MethodGet, "/notes", nil, &all)
	return slices.DeleteFunc(all, func(n kommoemu.Note) bool { return n.ContactID != contactID })
}

// waitMarked waits until the contact has exactly the tag (or none) and
// the number of notes given.
func (s *system) waitMarked(t *testing.T, id int64, tag string, notes int) {
	t.Helper()
	devtest.WaitUntil(t, fmt.Sprintf("contact %d with tag %q and %d notes", id, tag, notes), within, func() (bool, string) {
		c, n := s.contact(t, id), s.notes(t, id)
		has := slices.ContainsFunc(c.Tags, func(x string) bool { return len(x) > 10 && x[:10] == "unisender-" })
		ok := len(n) == notes && (tag == "" && !has || tag != "" && slices.Contains(c.Tags, tag))
		return ok, fmt.Sprintf("tags %v, notes %+v", c.Tags, n)
	})
}

func (s *system) setStatus(t *testing.T, email, status string) {
	t.Helper()
	s.unisender(t, http.MethodPut, "/contacts/"+url.PathEscape(email)+"/status", map[string]string{"status": status}, nil)
}

func (s *system) hook(t *testing.T) (unisenderemu.HookView, bool) {
	t.Helper()
	var h unisenderemu.HookView
	err := devenv.SandboxJSON(http.MethodGet, s.env.UnisenderURL+"/_admin/hook", nil, &h)
	return h, err == nil
}

func (s *system) unisenderCalls(t *testing.T) map[string]int {
	t.Helper()
	var st unisenderemu.Stats
	s.unisender(t, http.MethodGet, "/stats", nil, &st)
	return st.Calls
}

func (s *system) kommoLog(t *testing.T) []kommoemu.LogEntry {
	t.Helper()
	var log []kommoemu.LogEntry
	if err := devenv.SandboxJSON(http.MethodGet, s.env.KommoURL+"/_admin/log", nil, &log); err != nil {
		t.Fatal(err)
	}
	return log
}

func countRoute(log []kommoemu.LogEntry, route string) int {
	n := 0
	for _, e := range log {
		if e.Route == route {
			n++
		}
	}
	return n
}

// hookURL is the binding's Unisender hook route with its secret (from the
// binding's webhook Secret), or with secret replaced.
func (s *system) hookURL(t *testing.T, ctx context.Context) string {
	t.Helper()
	var sec corev1.Secret
	key := client.ObjectKey{Namespace: devenv.SampleNamespace, Name: contract.WebhookSecretName(devenv.SampleBinding)}
	if err := s.env.Client.Get(ctx, key, &sec); err != nil {
		t.Fatal(err)
	}
	return controllers.UnisenderHookURL(s.env.WebhookURL, tenant.Key{Namespace: bindingKey.Namespace, Name: bindingKey.Name}, string(sec.Data[contract.WebhookSecretKey]))
}

// signedHookBody is a delivery naming the address as Unisender's hook
// sends it, signed with key ("" leaves the auth field out).
func signedHookBody(key, email string) []byte {
	events := []map[string]any{{"event_name": "unsubscribe", "event_data": map[string]string{
		"email": email, "status": "unsubscribed", "event_time": time.Now().UTC().Format(time.DateTime)}}}
	body := map[string]any{"events_by_user": []any{map[string]any{"events": events}}}
	if key == "" {
		raw, _ := json.Marshal(body)
		return raw
	}
	body["auth"] = key
	raw, _ := json.Marshal(body)
	sum := md5.Sum(raw) //nolint:gosec // see the import
	keyJSON, _ := json.Marshal(key)
	return bytes.Replace(raw, append([]byte(`"auth":`), keyJSON...), []byte(`"auth":"`+hex.EncodeToString(sum[:])+`"`), 1)
}

func postHook(t *testing.T, u string, body []byte) int {
	t.Helper()
	resp, err := http.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (s *system) kommo(t *testing.T, method, path string, body, out any) {
	t.Helper()
	u := s.env.KommoURL + "/_admin/accounts/" + devenv.SandboxSubdomain + path
	if err := devenv.SandboxJSON(method, u, body, out); err != nil {
		t.Fatal(err)
	}
}

func (s *system) unisender(t *testing.T, method, path string, body, out any) {
	t.Helper()
	if err := devenv.SandboxJSON(method, s.env.UnisenderURL+"/_admin"+path, body, out); err != nil {
		t.Fatal(err)
	}
}

// waitStoredHolders waits until the store knows n contacts holding the
// address (the sync applied them).
func (s *system) waitStoredHolders(t *testing.T, ctx context.Context, email string, n int) {
	t.Helper()
	s.waitRow(t, ctx, fmt.Sprintf("%d stored holders of %s", n, email),
		`SELECT COUNT(*) = ? FROM contact_emails WHERE tenant = ? AND email = ?`, n, devenv.SampleNamespace+"/"+devenv.SampleBinding, email)
}

// waitStoredVersion waits until the worker applied the contact's version
// of Kommo's updated_at.
func (s *system) waitStoredVersion(t *testing.T, ctx context.Context, id, updatedAt int64) {
	t.Helper()
	s.waitRow(t, ctx, fmt.Sprintf("contact %d stored at version %d", id, updatedAt),
		`SELECT updated_at >= ? FROM contact_state WHERE tenant = ? AND contact_id = ?`, updatedAt, devenv.SampleNamespace+"/"+devenv.SampleBinding, id)
}

// waitRow waits until the query's one boolean answers true.
func (s *system) waitRow(t *testing.T, ctx context.Context, what, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("mysql", s.env.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	devtest.WaitUntil(t, what, within, func() (bool, string) {
		var ok bool
		err := db.QueryRowContext(ctx, query, args...).Scan(&ok)
		return err == nil && ok, fmt.Sprintf("%v (%v)", ok, err)
	})
}
