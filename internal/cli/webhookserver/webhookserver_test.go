package webhookserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

var kube *testenv.Kube

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithKube(m, []string{filepath.Join("..", "..", "..", "config", "crd", "bases")}, &kube))
}

func TestParseFlags(t *testing.T) {
	t.Setenv("BEANSTALKD_ADDR", "beanstalkd:11300")
	o, err := ParseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	def := webhookserver.DefaultConfig()
	if o.Listen != ":8443" || o.BeanstalkdAddr != "beanstalkd:11300" || o.Server.Tube != "kommo-events" ||
		o.Server.MaxBodyBytes != def.MaxBodyBytes || o.Namespaces != nil ||
		strings.Join(o.Server.AllowedOrigins, ",") != strings.Join(webhookserver.DefaultAllowedOrigins, ",") {
		t.Fatalf("defaults = %+v", o)
	}
	o, err = ParseFlags([]string{"--listen", "127.0.0.1:9000", "--beanstalkd-addr", "b:1", "--tube", "t1",
		"--max-body-bytes", "4096", "--namespaces", "shop,books", "--allowed-origins", "https://*.kommo.com, https://admin.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:9000" || o.BeanstalkdAddr != "b:1" || o.Server.Tube != "t1" || o.Server.MaxBodyBytes != 4096 ||
		strings.Join(o.Namespaces, "|") != "shop|books" || strings.Join(o.Server.AllowedOrigins, "|") != "https://*.kommo.com|https://admin.example.com" {
		t.Fatalf("parsed = %+v", o)
	}
	t.Setenv("BEANSTALKD_ADDR", "")
	for _, args := range [][]string{nil, {"--beanstalkd-addr", "b:1", "--tube", "-bad"}, {"--beanstalkd-addr", "b:1", "extra"}} {
		if _, err := ParseFlags(args); err == nil {
			t.Errorf("ParseFlags(%q) accepted", args)
		}
	}
}

// TestRunServesAsTheWebhookServerRole runs the subcommand as a user holding
// only config/rbac/webhookserver_role.yaml, restricted to one namespace, and
// drives all three kinds of route: a webhook lands in beanstalkd, a widget
// key and an OAuth code land in their Secrets.
func TestRunServesAsTheWebhookServerRole(t *testing.T) {
	ctx := context.Background()
	scheme, err := contract.Scheme()
	must(t, err)
	c, err := client.New(kube.Config, client.Options{Scheme: scheme})
	must(t, err)
	ns := "cli-" + randomHex(t, 4)
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	account := accountOfSample(t)
	clientSecret, clientID, webhookSecret := randomHex(t, 24), "cid-"+randomHex(t, 6), randomHex(t, 32)
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kommo-client"},
		Data: map[string][]byte{"client-secret": []byte(clientSecret)}}))
	ki := &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kommo"},
		Spec: v1alpha1.KommoIntegrationSpec{Subdomain: "acme", ClientID: clientID, RedirectURI: "https://hooks.example.test/oauth/callback",
			ClientSecretRef: &v1alpha1.SecretKeySelector{Name: "kommo-client", Key: "client-secret"}, OAuthCallback: &v1alpha1.OAuthCallbackSource{}},
	}
	must(t, c.Create(ctx, ki))
	ki.Status.AccountID = account
	must(t, c.Status().Update(ctx, ki))
	b := &v1alpha1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "newsletter"},
		Spec: v1alpha1.UnisenderBindingSpec{IntegrationRef: v1alpha1.IntegrationReference{Name: "kommo"},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "unisender", Key: "api-key"},
			List:            v1alpha1.ListSelector{ID: 5}, AllowWidgetKey: true},
	}
	must(t, c.Create(ctx, b))
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "newsletter-webhook",
		Labels: map[string]string{tokens.ManagedLabel: tokens.ManagedLabelValue}},
		Data: map[string][]byte{contract.WebhookSecretKey: []byte(webhookSecret)}}))
	b.Status.WebhookSecretName = "newsletter-webhook"
	must(t, c.Status().Update(ctx, b))

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, os.WriteFile(kubeconfig, userWithRole(t, c, "webhookserver_role.yaml"), 0o600))
	port, err := testenv.FreePort()
	must(t, err)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	tube := testenv.Tube("cli")
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, []string{"--kubeconfig", kubeconfig, "--listen", "127.0.0.1:" + strconv.Itoa(port),
			"--beanstalkd-addr", testenv.BeanstalkdAddr(t), "--tube", tube, "--namespaces", ns, "--operator-namespace", ns})
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("webhookserver: %v", err)
			}
		}
	}()
	waitReady(t, base+"/readyz", done)

	body, err := fixtures.KommoWebhookBody(fixtures.AddContact)
	must(t, err)
	if code := send(t, http.MethodPost, base+"/kommo/webhooks/"+ns+".newsletter/"+webhookSecret,
		"application/x-www-form-urlencoded", body, nil); code != http.StatusOK {
		t.Errorf("webhook: status %d", code)
	}
	consumer, err := queue.NewConsumer(testenv.BeanstalkdAddr(t), []string{tube}, queue.ConsumerOptions{})
	must(t, err)
	defer consumer.Close()
	job, err := consumer.Reserve(ctx, 5*time.Second)
	must(t, err)
	env, err := queue.Decode(job.Body)
	must(t, err)
	if env.Tenant != ns+"/newsletter" || env.AccountID != account {
		t.Errorf("job envelope %+v", env)
	}
	must(t, consumer.Delete(ctx, job.ID))

	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"aud": "https://hooks.example.test", "jti": randomHex(t, 8), "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(30 * time.Minute).Unix(), "account_id": account, "client_uuid": clientID, "is_admin": true,
	}).SignedString([]byte(clientSecret))
	must(t, err)
	if code := send(t, http.MethodPost, base+"/widget", "application/json", `{"apiKey":"cli-test-key"}`,
		map[string]string{"X-Auth-Token": tok}); code != http.StatusOK {
		t.Errorf("widget: status %d", code)
	}
	var key corev1.Secret
	must(t, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "newsletter-widget-key"}, &key))
	if string(key.Data["apiKey"]) != "cli-test-key" {
		t.Errorf("widget key %q", key.Data["apiKey"])
	}

	stateKey, err := tokens.EnsureStateKey(ctx, c, c, ns)
	must(t, err)
	state, err := tokens.NewCallbackState(stateKey, types.NamespacedName{Namespace: ns, Name: "kommo"}, time.Now().Add(time.Minute))
	must(t, err)
	if code := send(t, http.MethodGet, base+"/oauth/callback?code=c0de&client_id="+clientID+"&state="+state, "", "", nil); code != http.StatusOK {
		t.Errorf("oauth callback: status %d", code)
	}
	var code corev1.Secret
	must(t, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: tokens.OAuthCodeSecretName("kommo")}, &code))
	if string(code.Data[tokens.OAuthCodeKey]) != "c0de" {
		t.Errorf("oauth code %q", code.Data[tokens.OAuthCodeKey])
	}

	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after its context ended", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	must(t, err)
	return hex.EncodeToString(b)
}

func accountOfSample(t *testing.T) int64 {
	t.Helper()
	form, err := fixtures.KommoWebhook(fixtures.AddContact)
	must(t, err)
	id, err := strconv.ParseInt(form.Get("account[id]"), 10, 64)
	must(t, err)
	return id
}

func send(t *testing.T, method, url, contentType, body string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	must(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// waitReady polls /readyz until the subcommand serves (its cache synced).
func waitReady(t *testing.T, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the subcommand stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the subcommand never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// userWithRole binds config/rbac/<file> to a new user and returns that
// user's kubeconfig: the subcommand can do exactly what the role grants.
func userWithRole(t *testing.T, c client.Client, file string) []byte {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "rbac", file))
	must(t, err)
	role := &rbacv1.ClusterRole{}
	must(t, yaml.Unmarshal(raw, role))
	role.Name = "kus-webhookserver-under-test-" + randomHex(t, 3)
	must(t, c.Create(ctx, role))
	user := "kus-webhookserver-" + randomHex(t, 3)
	must(t, c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}))
	u, err := kube.Env.AddUser(envtest.User{Name: user}, nil)
	must(t, err)
	kc, err := u.KubeConfig()
	must(t, err)
	return kc
}
