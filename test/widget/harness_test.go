package widget_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// harnessDir holds the emulated Kommo host page and its npm lockfile.
var harnessDir = filepath.Join(widgetSrc, "harness")

// requireHarnessDeps ends the test when requirejs and jQuery, pinned by the
// harness's lockfile, are not installed: `make test-tools` runs npm ci.
func requireHarnessDeps(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(harnessDir, "node_modules", ".package-lock.json")); err != nil {
		t.Fatalf("the widget harness's npm packages are not installed in %s: run `make test-tools` (npm ci)", harnessDir)
	}
}

// kommoToken is what Kommo's backend puts into the one-time JWT it gives
// $authorizedAjax; the harness can be told to sign it wrongly.
type kommoToken struct {
	Secret     []byte
	Issuer     string // the account URL
	Audience   string // scheme+host of the integration's Redirect URI
	AccountID  int64
	UserID     int64
	ClientUUID string
	Subdomain  string
	IssuedAt   time.Time
}

// sign builds the token like Kommo: HS256 over the client secret, valid for
// 30 minutes from iat, with a fresh jti.
func (k kommoToken) sign() (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	header, err := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss": k.Issuer, "aud": k.Audience, "jti": hex.EncodeToString(jti),
		"iat": k.IssuedAt.Unix(), "nbf": k.IssuedAt.Unix(), "exp": k.IssuedAt.Add(30 * time.Minute).Unix(),
		"account_id": k.AccountID, "user_id": k.UserID, "client_uuid": k.ClientUUID,
		"subdomain": k.Subdomain, "is_admin": true,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, k.Secret)
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil)), nil
}

// harness serves the emulated Kommo host: the page, the widget's files, the
// npm-installed loader and jQuery, and /sign, its stand-in for Kommo's
// token endpoint.
type harness struct {
	mu    sync.Mutex
	token kommoToken
	signs int
}

func (h *harness) setToken(k kommoToken) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.token = k
}

func (h *harness) handler() http.Handler {
	mux := http.NewServeMux()
	modules := filepath.Join(harnessDir, "node_modules")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(harnessDir, "index.html"))
	})
	mux.HandleFunc("GET /vendor/require.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(modules, "requirejs", "require.js"))
	})
	mux.HandleFunc("GET /vendor/jquery.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(modules, "jquery", "dist", "jquery.js"))
	})
	for _, name := range []string{"manifest.json", "script.js", "i18n/"} {
		mux.Handle("GET /widget/"+name, http.StripPrefix("/widget/", http.FileServer(http.Dir(widgetSrc))))
	}
	mux.HandleFunc("POST /sign", func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		k := h.token
		h.signs++
		h.mu.Unlock()
		token, err := k.sign()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": token})
	})
	return mux
}

// tokensIssued says how many tokens the widget asked the host for: each
// authorized request to the sync server costs one.
func (h *harness) tokensIssued() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.signs
}
