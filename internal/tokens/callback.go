package tokens

import (
	"net/url"
	"strings"
)

// AuthorizationURL is where an admin of the Kommo account grants the
// integration access: Kommo's consent page for the account's region
// (www.amocrm.ru for amocrm.ru accounts, www.kommo.com otherwise).
func AuthorizationURL(apiBaseURL, clientID, state string) string {
	consent := "https://www.kommo.com/oauth"
	if u, err := url.Parse(apiBaseURL); err == nil {
		switch h := u.Hostname(); {
		case strings.HasSuffix(h, ".amocrm.ru"):
			consent = "https://www.amocrm.ru/oauth"
		case strings.HasSuffix(h, ".amocrm.com"):
			consent = "https://www.amocrm.com/oauth"
		}
	}
	q := url.Values{"client_id": {clientID}, "state": {state}, "mode": {"post_message"}}
	return consent + "?" + q.Encode()
}
