package kommo

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultHostPatterns are Kommo's API hosts: every account's API is on a
// subdomain of one of these domains, over https.
var DefaultHostPatterns = []string{"*.kommo.com", "*.amocrm.ru", "*.amocrm.com"}

// HostsFlagName is the manager's and the worker's flag that widens the
// HostPolicy (bound with flag.Var to a *HostPolicy); HostsFlagUsage is its
// help text.
const (
	HostsFlagName  = "allowed-kommo-hosts"
	HostsFlagUsage = "comma-separated hosts, besides Kommo's (*.kommo.com, *.amocrm.ru, *.amocrm.com), that KommoIntegrations' spec.baseURL may name, " +
		"as *.example.com or a host name or IP, over https; prefix one with http:// to allow plain http for it (the sandbox: http://127.0.0.1)"
)

// ErrHostNotAllowed: a base URL outside the HostPolicy. An integration's
// client secret and tokens are sent to its base URL, so an arbitrary one
// would hand them to whoever runs that host (or let a tenant make the
// operator call services inside the cluster).
var ErrHostNotAllowed = errors.New("kommo: base URL not allowed")

// HostPolicy says which base URLs may receive an integration's credentials:
// Kommo's domains over https (DefaultHostPatterns), plus the patterns an
// administrator added (the sandbox, a test server). The zero value allows
// Kommo's domains only.
type HostPolicy struct {
	extra []hostPattern
}

// hostPattern is "*.example.com" (any subdomain, not the domain itself) or
// an exact host name or IP; the port is not part of it.
type hostPattern struct {
	host      string
	wildcard  bool
	allowHTTP bool
}

// Set adds a comma-separated list of host patterns to Kommo's:
// "*.example.com" or "127.0.0.1", optionally prefixed with "http://" to
// allow plain http for it (https is always allowed). It makes *HostPolicy a
// flag.Value.
func (p *HostPolicy) Set(list string) error {
	for _, s := range strings.Split(list, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		hp := hostPattern{}
		if rest, ok := strings.CutPrefix(s, "http://"); ok {
			hp.allowHTTP, s = true, rest
		} else {
			s = strings.TrimPrefix(s, "https://")
		}
		if rest, ok := strings.CutPrefix(s, "*."); ok {
			hp.wildcard, s = true, rest
		}
		if s == "" || strings.ContainsAny(s, "*/:@?#[] ") {
			return fmt.Errorf("--%s: %q is not a host pattern (*.example.com or a host, optionally after http://)", HostsFlagName, s)
		}
		hp.host = s
		p.extra = append(p.extra, hp)
	}
	return nil
}

// String lists the added patterns as Set reads them.
func (p *HostPolicy) String() string {
	if p == nil {
		return ""
	}
	out := make([]string, len(p.extra))
	for i, hp := range p.extra {
		out[i] = hp.String()
	}
	return strings.Join(out, ",")
}

func (hp hostPattern) String() string {
	s := hp.host
	if hp.wildcard {
		s = "*." + s
	}
	if hp.allowHTTP {
		s = "http://" + s
	}
	return s
}

// Check refuses a base URL whose host is not allowed, or that uses plain
// http for a host not allowed over http. The error names the host (never
// the path or query) and the flag that widens the policy.
func (p HostPolicy) Check(baseURL string) error {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%w: it is not an absolute http(s) URL", ErrHostNotAllowed)
	}
	if u.User != nil {
		return fmt.Errorf("%w: it carries user information", ErrHostNotAllowed)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	for _, hp := range p.patterns() {
		if hp.matches(host) && (u.Scheme == "https" || hp.allowHTTP) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s://%s is not one of Kommo's API hosts (%s over https); the operator sends the integration's client secret and tokens there, "+
		"so another host must be allowed with the manager's and workers' --%s flag", ErrHostNotAllowed, u.Scheme, host,
		strings.Join(DefaultHostPatterns, ", "), HostsFlagName)
}

func (p HostPolicy) patterns() []hostPattern {
	out := make([]hostPattern, 0, len(DefaultHostPatterns)+len(p.extra))
	for _, d := range DefaultHostPatterns {
		out = append(out, hostPattern{host: strings.TrimPrefix(d, "*."), wildcard: true})
	}
	return append(out, p.extra...)
}

func (hp hostPattern) matches(host string) bool {
	if hp.wildcard {
		return strings.HasSuffix(host, "."+hp.host) && len(host) > len(hp.host)+1
	}
	return host == hp.host
}
