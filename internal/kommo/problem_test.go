package kommo

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// classify is also fed bodies the emulator never sends: Kommo's real
// Russian-language problem, league/oauth2-server's plain shape, HTML, and
// a body that echoes what the client sent.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ep     endpointKind
		status int
		body   string
		want   error
	}{
		{"revoked, as Kommo answers it", endpointRefreshGrant, 401,
			`{"hint":"Token has been revoked","title":"Некорректный запрос","type":"https://developers.amocrm.ru/v3/errors/OAuthProblemJson","status":401,"detail":"В запросе отсутствует ряд параметров или параметры невалидны"}`,
			ErrTokenRevoked},
		{"refresh refused with a plain invalid_grant", endpointRefreshGrant, 400, `{"error":"invalid_grant"}`, ErrTokenRevoked},
		{"league invalid_client", endpointRefreshGrant, 401,
			`{"error":"invalid_client","error_description":"Client authentication failed","message":"Client authentication failed"}`, ErrInvalidClient},
		{"code expired", endpointCodeGrant, 400, `{"hint":"Authorization code has expired","status":400}`, ErrInvalidGrant},
		{"redirect mismatch", endpointCodeGrant, 400, `{"hint":"Check the redirect_uri parameter"}`, ErrInvalidClient},
		{"api 401", endpointAPI, 401, `{"title":"Unauthorized","status":401}`, ErrUnauthorized},
		{"blocked html", endpointAPI, 403, `<html><body>blocked</body></html>`, ErrAccountBlocked},
		{"blocked on token endpoint", endpointRefreshGrant, 403, ``, ErrAccountBlocked},
		{"rate", endpointAPI, 429, ``, ErrRateLimited},
		{"gateway html", endpointAPI, 502, `<html>bad gateway</html>`, ErrServer},
		{"not found", endpointAPI, 404, `{}`, ErrNotFound},
		{"validation", endpointAPI, 400, `{"validation-errors":[]}`, ErrBadRequest},
	} {
		err := classify("POST /x", tc.ep, tc.status, []byte(tc.body), nil)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: kind %s, want %v", tc.name, err.Kind, tc.want)
		}
		for _, other := range kindSentinel {
			if other != tc.want && errors.Is(err, other) {
				t.Errorf("%s: also matches %v", tc.name, other)
			}
		}
	}
}

func TestClassifyRedactsEchoedSecretsAndShortensHTML(t *testing.T) {
	const secret = "refresh-def50200abc"
	err := classify("POST /oauth2/access_token", endpointRefreshGrant, http.StatusUnauthorized,
		[]byte(`{"title":"bad token `+secret+`","detail":"`+strings.Repeat("x", 500)+`","hint":"Token has been revoked"}`), []string{secret})
	if msg := err.Error(); strings.Contains(msg, secret) || len(msg) > 500 {
		t.Errorf("message %q (%d bytes) carries the secret or the whole body", msg, len(msg))
	}

	page := "<!DOCTYPE html><html><head><script>var token='" + secret + "';</script><style>p{}</style></head>" +
		"<body><h1>Access denied</h1><p>" + strings.Repeat("Contact support. ", 30) + "</p></body></html>"
	err = classify("GET /api/v4/account", endpointAPI, http.StatusForbidden, []byte(page), nil)
	if strings.ContainsAny(err.Detail, "<>") || strings.Contains(err.Detail, secret) || !strings.HasPrefix(err.Detail, "Access denied") ||
		len(err.Detail) > 130 {
		t.Errorf("detail %q: want a short tag-free snippet without the script", err.Detail)
	}
}
