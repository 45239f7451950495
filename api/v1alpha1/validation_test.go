package v1alpha1_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

var kube *testenv.Kube

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithKube(m, []string{"../../config/crd/bases"}, &kube))
}

// strict makes the API server refuse unknown or duplicate fields instead of
// dropping them, so a typo in a test object or a sample cannot pass unseen.
var strict = client.FieldValidation("Strict")

// newClient returns a client for the envtest API server and a fresh
// namespace that is deleted when the test ends.
func newClient(t *testing.T) (client.Client, string) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(kube.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "api-" + randomSuffix()}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	return c, ns.Name
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ref(name, key string) *v1alpha1.SecretKeySelector {
	return &v1alpha1.SecretKeySelector{Name: name, Key: key}
}

// validIntegration is the smallest accepted KommoIntegration using the
// authorization-code flow; the cases below break one thing each.
func validIntegration() *v1alpha1.KommoIntegration {
	return &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: "acme"},
		Spec: v1alpha1.KommoIntegrationSpec{
			Subdomain:            "acme",
			ClientID:             "0b1f8f2e-3c7d-4b5e-9a1f-2d3c4b5a6e7f",
			ClientSecretRef:      ref("kommo", "client-secret"),
			RedirectURI:          "https://hooks.example.com/oauth/callback",
			AuthorizationCodeRef: ref("kommo", "code"),
		},
	}
}

// validBinding is the smallest accepted UnisenderBinding.
func validBinding() *v1alpha1.UnisenderBinding {
	return &v1alpha1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "acme"},
		Spec: v1alpha1.UnisenderBindingSpec{
			IntegrationRef:  v1alpha1.IntegrationReference{Name: "acme"},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "unisender", Key: "api-key"},
			List:            v1alpha1.ListSelector{Title: "Kommo contacts"},
		},
	}
}

func integrationWith(mutate func(*v1alpha1.KommoIntegrationSpec)) client.Object {
	o := validIntegration()
	mutate(&o.Spec)
	return o
}

func bindingWith(mutate func(*v1alpha1.UnisenderBindingSpec)) client.Object {
	o := validBinding()
	mutate(&o.Spec)
	return o
}

// unstructuredWith converts a typed object and then sets a raw value, for
// input the Go types cannot express (an empty string they would omit, a
// malformed duration, an unknown enum value typed by hand).
func unstructuredWith(obj client.Object, value any, path ...string) client.Object {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		panic(err)
	}
	u := &unstructured.Unstructured{Object: m}
	gvk := v1alpha1.GroupVersion.WithKind(kindOf(obj))
	u.SetGroupVersionKind(gvk)
	if err := unstructured.SetNestedField(u.Object, value, path...); err != nil {
		panic(err)
	}
	return u
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *v1alpha1.KommoIntegration:
		return "KommoIntegration"
	case *v1alpha1.UnisenderBinding:
		return "UnisenderBinding"
	}
	panic("unexpected type")
}

type invalidCase struct {
	name string
	obj  client.Object
	// field is the path the API server must name; text a part of its message.
	field, text string
}

func invalidIntegrations() []invalidCase {
	return []invalidCase{
		{"no subdomain nor baseURL", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.Subdomain = "" }),
			"spec", "exactly one of subdomain or baseURL"},
		{"both subdomain and baseURL", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.BaseURL = "https://acme.amocrm.ru" }),
			"spec", "exactly one of subdomain or baseURL"},
		{"subdomain with upper case and underscore", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.Subdomain = "Acme_Corp" }),
			"spec.subdomain", "should match"},
		{"subdomain ending in a dash", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.Subdomain = "acme-" }),
			"spec.subdomain", "should match"},
		{"baseURL not a URL", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.Subdomain, s.BaseURL = "", "acme.kommo.com" }),
			"spec.baseURL", "absolute http or https URL"},
		{"baseURL with ftp scheme", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.Subdomain, s.BaseURL = "", "ftp://acme.kommo.com" }),
			"spec.baseURL", "absolute http or https URL"},
		{"redirectURI relative", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.RedirectURI = "/oauth/callback" }),
			"spec.redirectURI", "absolute http or https URL"},
		{"neither clientID nor appRef", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.ClientID = "" }),
			"spec", "exactly one of appRef"},
		{"both clientID and appRef", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.ClientSecretRef, s.RedirectURI = nil, ""
			s.AppRef = &v1alpha1.AppReference{Name: "shared"}
		}), "spec", "exactly one of appRef"},
		{"appRef with the tenant's own client secret", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.ClientID, s.AppRef = "", &v1alpha1.AppReference{Name: "shared"}
		}), "spec", "with appRef the KommoApp holds the client secret"},
		{"clientID with spaces", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.ClientID = "my client" }),
			"spec.clientID", "should match"},
		{"no first-token source", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.AuthorizationCodeRef = nil }),
			"spec", "exactly one first-token source"},
		{"two first-token sources", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.LongLivedTokenRef = ref("kommo", "token") }),
			"spec", "exactly one first-token source"},
		{"three first-token sources", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.LongLivedTokenRef, s.OAuthCallback = ref("kommo", "token"), &v1alpha1.OAuthCallbackSource{}
		}), "spec", "exactly one first-token source"},
		{"code flow without clientSecretRef", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.ClientSecretRef = nil }),
			"spec.clientSecretRef", "clientSecretRef is required"},
		{"callback flow without redirectURI", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.AuthorizationCodeRef, s.OAuthCallback, s.RedirectURI = nil, &v1alpha1.OAuthCallbackSource{}, ""
		}), "spec.redirectURI", "redirectURI is required"},
		{"secret ref without key", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.ClientSecretRef.Key = "" }),
			"spec.clientSecretRef.key", "Required value"},
		{"secret ref with empty key", unstructuredWith(validIntegration(), "", "spec", "authorizationCodeRef", "key"),
			"spec.authorizationCodeRef.key", "at least 1 chars"},
		{"secret ref with a slash in the key", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.AuthorizationCodeRef.Key = "a/b" }),
			"spec.authorizationCodeRef.key", "should match"},
		{"secret ref with a bad name", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.ClientSecretRef.Name = "Kommo_Secret" }),
			"spec.clientSecretRef.name", "should match"},
		{"rateLimit zero", unstructuredWith(validIntegration(), int64(0), "spec", "rateLimit", "requestsPerSecond"),
			"spec.rateLimit.requestsPerSecond", "greater than or equal to 1"},
		{"rateLimit above the account limit", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.RateLimit.RequestsPerSecond = 51 }),
			"spec.rateLimit.requestsPerSecond", "less than or equal to 50"},
		{"refreshBefore longer than a token lives", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.RefreshBefore = &metav1.Duration{Duration: 48 * time.Hour}
		}), "spec.refreshBefore", "must be a duration between 1s and 24h"},
		{"refreshBefore zero", integrationWith(func(s *v1alpha1.KommoIntegrationSpec) { s.RefreshBefore = &metav1.Duration{} }),
			"spec.refreshBefore", "must be a duration between 1s and 24h"},
		{"refreshBefore not a duration", unstructuredWith(validIntegration(), "one hour", "spec", "refreshBefore"),
			"spec.refreshBefore", "must be a duration between 1s and 24h"},
	}
}

func invalidBindings() []invalidCase {
	customField := func(f v1alpha1.CustomFieldMapping) func(*v1alpha1.UnisenderBindingSpec) {
		return func(s *v1alpha1.UnisenderBindingSpec) {
			s.FieldMapping.CustomFields = append(s.FieldMapping.CustomFields, f)
		}
	}
	return []invalidCase{
		{"missing integrationRef", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.IntegrationRef = v1alpha1.IntegrationReference{} }),
			"spec.integrationRef", "Required value"},
		{"integrationRef with a bad name", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.IntegrationRef.Name = "Acme!" }),
			"spec.integrationRef.name", "should match"},
		{"missing apiKeySecretRef", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.APIKeySecretRef = v1alpha1.SecretKeySelector{} }),
			"spec.apiKeySecretRef", "Required value"},
		{"apiKeySecretRef without key", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.APIKeySecretRef.Key = "" }),
			"spec.apiKeySecretRef.key", "Required value"},
		{"missing list", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.List = v1alpha1.ListSelector{} }),
			"spec.list", "Required value"},
		{"list with neither id nor title", unstructuredWith(validBinding(), map[string]any{}, "spec", "list"),
			"spec.list", "exactly one of id or title"},
		{"list with both id and title", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.List.ID = 42 }),
			"spec.list", "exactly one of id or title"},
		{"negative list id", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.List = v1alpha1.ListSelector{ID: -5} }),
			"spec.list.id", "greater than or equal to 1"},
		{"empty list title", unstructuredWith(validBinding(), "", "spec", "list", "title"),
			"spec.list.title", "at least 1 chars"},
		{"list title too long", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.List.Title = strings.Repeat("x", 256) }),
			"spec.list.title", "may not be more than 255"},
		{"unisender field starting with a digit", bindingWith(customField(v1alpha1.CustomFieldMapping{KommoFieldID: 1, UnisenderField: "1st"})),
			"spec.fieldMapping.customFields[0].unisenderField", "should match"},
		{"unisender field shadowing the email column", bindingWith(customField(v1alpha1.CustomFieldMapping{KommoFieldID: 1, UnisenderField: "email_status"})),
			"spec.fieldMapping.customFields[0].unisenderField", "special Unisender column"},
		{"custom field with an unknown type", bindingWith(customField(v1alpha1.CustomFieldMapping{KommoFieldID: 1, UnisenderField: "Age", Type: "integer"})),
			"spec.fieldMapping.customFields[0].type", "Unsupported value"},
		{"custom field with both id and code", bindingWith(customField(v1alpha1.CustomFieldMapping{KommoFieldID: 1, KommoFieldCode: "POSITION", UnisenderField: "Position"})),
			"spec.fieldMapping.customFields[0]", "exactly one of kommoFieldID or kommoFieldCode"},
		{"custom field with neither id nor code", bindingWith(customField(v1alpha1.CustomFieldMapping{UnisenderField: "Position"})),
			"spec.fieldMapping.customFields[0]", "exactly one of kommoFieldID or kommoFieldCode"},
		{"duplicate unisender field", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) {
			s.FieldMapping.CustomFields = []v1alpha1.CustomFieldMapping{
				{KommoFieldID: 1, UnisenderField: "City"}, {KommoFieldID: 2, UnisenderField: "City"},
			}
		}), "spec.fieldMapping.customFields[1]", "Duplicate value"},
		{"custom field writing the name field", bindingWith(customField(v1alpha1.CustomFieldMapping{KommoFieldID: 1, UnisenderField: "Name"})),
			"spec.fieldMapping.customFields", "must not use the Unisender field of the contact name"},
		{"name field shadowing the phone column", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.FieldMapping.Name = "phone" }),
			"spec.fieldMapping.name", "special Unisender column"},
		{"sweepMaxRemovalPercent 0", unstructuredWith(validBinding(), int64(0), "spec", "sweepMaxRemovalPercent"),
			"spec.sweepMaxRemovalPercent", "should be greater than or equal to 1"},
		{"sweepMaxRemovalPercent 101", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.SweepMaxRemovalPercent = 101 }),
			"spec.sweepMaxRemovalPercent", "should be less than or equal to 100"},
		{"resyncInterval 10s", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) {
			s.ResyncInterval = &metav1.Duration{Duration: 10 * time.Second}
		}),
			"spec.resyncInterval", "must be a duration between 1m and 168h"},
		{"resyncInterval 1000h", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) {
			s.ResyncInterval = &metav1.Duration{Duration: 1000 * time.Hour}
		}),
			"spec.resyncInterval", "must be a duration between 1m and 168h"},
		{"resyncInterval negative", unstructuredWith(validBinding(), "-5m", "spec", "resyncInterval"),
			"spec.resyncInterval", "must be a duration between 1m and 168h"},
		{"bad deletionPolicy", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.DeletionPolicy = "Unsubscribe" }),
			"spec.deletionPolicy", "Unsupported value"},
		{"bad emails", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) { s.Emails = "First" }),
			"spec.emails", "Unsupported value"},
		{"doubleOptin as a number", unstructuredWith(validBinding(), int64(3), "spec", "doubleOptin"),
			"spec.doubleOptin", "must be of type string"},
		{"too many custom fields", bindingWith(func(s *v1alpha1.UnisenderBindingSpec) {
			for i := range 51 {
				s.FieldMapping.CustomFields = append(s.FieldMapping.CustomFields,
					v1alpha1.CustomFieldMapping{KommoFieldID: int64(i + 1), UnisenderField: "F" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)})
			}
		}), "spec.fieldMapping.customFields", "must have at most 50 items"},
	}
}

// TestInvalidObjectsAreRefused: each object breaks one rule; the API server
// must refuse it as Invalid, name the field, and store nothing.
func TestInvalidObjectsAreRefused(t *testing.T) {
	c, ns := newClient(t)
	cases := append(invalidIntegrations(), invalidBindings()...)
	assertRefused(t, c, ns, "bad", cases)
}

// assertRefused creates each case's object (named prefix-<i>) in ns: the
// API server must refuse it as Invalid, name the field, and store nothing.
func assertRefused(t *testing.T, c client.Client, ns, prefix string, cases []invalidCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj
			obj.SetNamespace(ns)
			obj.SetName(prefix + "-" + strings.ToLower(hex.EncodeToString([]byte{byte(i)})))
			err := c.Create(context.Background(), obj, strict)
			if err == nil {
				t.Fatalf("accepted; want refused naming %s", tc.field)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			t.Logf("refused: %v", err)
			assertNamesField(t, err, tc.field, tc.text)
			assertNotStored(t, c, obj)
		})
	}
}

func assertNamesField(t *testing.T, err error, field, text string) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, field+":") && !strings.Contains(msg, field+"\"") && !strings.Contains(msg, "field \""+field) {
		t.Errorf("error does not name %s:\n%s", field, msg)
	}
	if !strings.Contains(msg, text) {
		t.Errorf("error does not say %q:\n%s", text, msg)
	}
}

func assertNotStored(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kindOf(typed(obj))))
	err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), u)
	if !apierrors.IsNotFound(err) {
		t.Errorf("refused object is readable (err=%v)", err)
	}
}

// typed returns a typed zero value of the kind of obj (typed or unstructured).
func typed(obj client.Object) client.Object {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		switch u.GetKind() {
		case "KommoIntegration":
			return &v1alpha1.KommoIntegration{}
		case "UnisenderBinding":
			return &v1alpha1.UnisenderBinding{}
		}
	}
	return obj
}

// TestUnknownFieldIsRefused: a misspelt field is refused under strict field
// validation (kubectl's default) instead of being silently pruned.
func TestUnknownFieldIsRefused(t *testing.T) {
	c, ns := newClient(t)
	obj := unstructuredWith(validIntegration(), "acme", "spec", "subDomain")
	obj.SetNamespace(ns)
	err := c.Create(context.Background(), obj, strict)
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("want BadRequest, got %v", err)
	}
	assertNamesField(t, err, "spec.subDomain", "unknown field")
	assertNotStored(t, c, obj)
}

// TestValidVariantsAreAccepted keeps the rules from refusing what they must
// allow: every token source, http for the sandbox, list by id, custom fields.
func TestValidVariantsAreAccepted(t *testing.T) {
	c, ns := newClient(t)
	cases := map[string]client.Object{
		"oauth callback": integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.AuthorizationCodeRef, s.OAuthCallback = nil, &v1alpha1.OAuthCallbackSource{}
		}),
		"oauth callback through a shared KommoApp": integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.AuthorizationCodeRef, s.OAuthCallback = nil, &v1alpha1.OAuthCallbackSource{}
			s.ClientID, s.ClientSecretRef, s.RedirectURI = "", nil, ""
			s.AppRef = &v1alpha1.AppReference{Name: "shared"}
		}),
		"long-lived token without client secret or redirect": integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.AuthorizationCodeRef, s.ClientSecretRef, s.RedirectURI = nil, nil, ""
			s.LongLivedTokenRef = ref("kommo", "token")
		}),
		"sandbox over http by baseURL": integrationWith(func(s *v1alpha1.KommoIntegrationSpec) {
			s.Subdomain, s.BaseURL = "", "http://127.0.0.1:8080"
			s.RedirectURI = "http://127.0.0.1:8081/oauth/callback"
			s.RefreshBefore = &metav1.Duration{Duration: 2 * time.Second}
			s.RateLimit.RequestsPerSecond = 50
		}),
		"binding by list id with custom fields": bindingWith(func(s *v1alpha1.UnisenderBindingSpec) {
			s.List = v1alpha1.ListSelector{ID: 55688}
			s.FieldMapping.CustomFields = []v1alpha1.CustomFieldMapping{
				{KommoFieldID: 1234, UnisenderField: "Birthday", Type: v1alpha1.FieldTypeDate},
				{KommoFieldCode: "POSITION", UnisenderField: "job_title-2"},
			}
			s.Emails, s.DoubleOptin, s.DeletionPolicy = v1alpha1.EmailsPrimary, v1alpha1.DoubleOptinInvite, v1alpha1.DeletionPolicyKeep
			s.ResyncInterval = &metav1.Duration{Duration: 168 * time.Hour}
			s.InitialImport.Enabled = ptr.To(false)
			s.FieldMapping.Phone = ptr.To(false)
		}),
	}
	i := 0
	for name, obj := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			obj.SetNamespace(ns)
			obj.SetName("ok-" + hex.EncodeToString([]byte{byte(i)}))
			if err := c.Create(context.Background(), obj, strict); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestSamplesAreAccepted creates every object of config/samples, Secrets
// included, with strict field validation.
func TestSamplesAreAccepted(t *testing.T) {
	c, ns := newClient(t)
	files, err := filepath.Glob("../../config/samples/sync_*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("samples: %v %v", files, err)
	}
	kinds := map[string]int{}
	for _, f := range files {
		for _, u := range readObjects(t, f) {
			u.SetNamespace(ns)
			if err := c.Create(context.Background(), u, strict); err != nil {
				t.Errorf("%s: %s %s refused: %v", filepath.Base(f), u.GetKind(), u.GetName(), err)
			}
			kinds[u.GetKind()]++
		}
	}
	for _, k := range []string{"KommoIntegration", "UnisenderBinding", "Secret"} {
		if kinds[k] == 0 {
			t.Errorf("samples hold no %s", k)
		}
	}
}

// TestSharedAppSamplesAreAccepted creates the shared-app samples: the
// cluster-scoped KommoApp, its Secret (in a test namespace standing for
// the operator's) and a tenant's integration referencing it.
func TestSharedAppSamplesAreAccepted(t *testing.T) {
	c, ns := newClient(t)
	kinds := map[string]int{}
	for _, f := range []string{"kommoapp.yaml", "kommointegration.yaml"} {
		for _, u := range readObjects(t, filepath.Join("../../config/samples/shared-app", f)) {
			if u.GetKind() != "KommoApp" {
				u.SetNamespace(ns)
			} else {
				u.SetName(u.GetName() + "-" + randomSuffix())
				t.Cleanup(func() { _ = c.Delete(context.Background(), u) })
			}
			if err := c.Create(context.Background(), u, strict); err != nil {
				t.Errorf("%s: %s %s refused: %v", f, u.GetKind(), u.GetName(), err)
			}
			kinds[u.GetKind()]++
		}
	}
	if kinds["KommoApp"] != 1 || kinds["KommoIntegration"] != 1 || kinds["Secret"] != 1 {
		t.Errorf("objects created: %v", kinds)
	}
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// TestDefaultsAreApplied creates the smallest objects and reads back what the
// API server filled in.
func TestDefaultsAreApplied(t *testing.T) {
	c, ns := newClient(t)
	ctx := context.Background()

	ki := validIntegration()
	ki.Namespace = ns
	if err := c.Create(ctx, ki, strict); err != nil {
		t.Fatal(err)
	}
	got := &v1alpha1.KommoIntegration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(ki), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.RateLimit.RequestsPerSecond != v1alpha1.DefaultRequestsPerSecond {
		t.Errorf("rateLimit.requestsPerSecond = %d, want %d", got.Spec.RateLimit.RequestsPerSecond, v1alpha1.DefaultRequestsPerSecond)
	}
	if got.Spec.RefreshBefore == nil || got.Spec.RefreshBefore.Duration != v1alpha1.DefaultRefreshBefore {
		t.Errorf("refreshBefore = %v, want %v", got.Spec.RefreshBefore, v1alpha1.DefaultRefreshBefore)
	}
	if got.Spec.Suspend {
		t.Error("suspend defaulted to true")
	}

	ub := validBinding()
	ub.Namespace = ns
	ub.Spec.FieldMapping.CustomFields = []v1alpha1.CustomFieldMapping{{KommoFieldID: 7, UnisenderField: "City"}}
	if err := c.Create(ctx, ub, strict); err != nil {
		t.Fatal(err)
	}
	b := &v1alpha1.UnisenderBinding{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(ub), b); err != nil {
		t.Fatal(err)
	}
	s := b.Spec
	checks := []struct {
		field     string
		got, want any
	}{
		{"emails", s.Emails, v1alpha1.EmailsAll},
		{"doubleOptin", s.DoubleOptin, v1alpha1.DoubleOptinConsentHeld},
		{"deletionPolicy", s.DeletionPolicy, v1alpha1.DeletionPolicyExclude},
		{"fieldMapping.name", s.FieldMapping.Name, v1alpha1.DefaultNameField},
		{"fieldMapping.phone", s.FieldMapping.Phone != nil && *s.FieldMapping.Phone, true},
		{"fieldMapping.tags", s.FieldMapping.Tags != nil && *s.FieldMapping.Tags, true},
		{"fieldMapping.customFields[0].type", s.FieldMapping.CustomFields[0].Type, v1alpha1.FieldTypeString},
		{"initialImport.enabled", s.InitialImport.Enabled != nil && *s.InitialImport.Enabled, true},
		{"resyncInterval", s.ResyncInterval != nil && s.ResyncInterval.Duration == v1alpha1.DefaultResyncInterval, true},
		{"allowWidgetKey", s.AllowWidgetKey, false},
		{"sweepMaxRemovalPercent", s.SweepMaxRemovalPercent, int32(v1alpha1.DefaultSweepMaxRemovalPercent)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.field, ch.got, ch.want)
		}
	}
}

// TestIntegrationRefIsImmutable: moving a binding to another Kommo account is
// refused; other spec changes are not.
func TestIntegrationRefIsImmutable(t *testing.T) {
	c, ns := newClient(t)
	ctx := context.Background()
	ub := validBinding()
	ub.Namespace = ns
	if err := c.Create(ctx, ub, strict); err != nil {
		t.Fatal(err)
	}
	ub.Spec.IntegrationRef.Name = "other"
	err := c.Update(ctx, ub, strict)
	if err == nil {
		t.Fatal("integrationRef change accepted")
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want Invalid, got %v", err)
	}
	assertNamesField(t, err, "spec.integrationRef", "immutable")

	if err := c.Get(ctx, client.ObjectKeyFromObject(ub), ub); err != nil {
		t.Fatal(err)
	}
	ub.Spec.List = v1alpha1.ListSelector{ID: 99}
	ub.Spec.Suspend = true
	if err := c.Update(ctx, ub, strict); err != nil {
		t.Fatalf("ordinary spec change refused: %v", err)
	}
}

// TestStatusIsASubresource: a status write through the main resource is
// ignored, through /status it sticks without bumping the generation — so
// spec edits cannot forge status, and status patches do not retrigger work.
// The first Update also shows that a typed client's round trip of a
// defaulted object (durations re-encoded by Go) leaves the generation alone.
func TestStatusIsASubresource(t *testing.T) {
	c, ns := newClient(t)
	ctx := context.Background()
	ki := validIntegration()
	ki.Namespace = ns
	if err := c.Create(ctx, ki, strict); err != nil {
		t.Fatal(err)
	}
	gen := ki.Generation
	ki.Status.AccountID = 123
	if err := c.Update(ctx, ki); err != nil {
		t.Fatal(err)
	}
	if ki.Status.AccountID != 0 {
		t.Errorf("status.accountID written through the main resource: %d", ki.Status.AccountID)
	}
	if ki.Generation != gen {
		t.Errorf("typed round trip of an unchanged spec bumped generation %d -> %d", gen, ki.Generation)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	ki.Status.AccountID = 123
	ki.Status.TokenExpiresAt = &now
	ki.SetConditions([]metav1.Condition{{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded,
		ObservedGeneration: ki.Generation, LastTransitionTime: now,
	}})
	if err := c.Status().Update(ctx, ki); err != nil {
		t.Fatal(err)
	}
	got := &v1alpha1.KommoIntegration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(ki), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.AccountID != 123 || len(got.GetConditions()) != 1 || got.Generation != gen {
		t.Errorf("after status update: accountID=%d conditions=%v generation=%d (was %d)",
			got.Status.AccountID, got.GetConditions(), got.Generation, gen)
	}
}
