// Package truncate shortens text that goes into an error, a log line or a
// status message, so that a long input (a webhook body, a server's answer)
// cannot make them unbounded.
package truncate

import "unicode/utf8"

// Text returns s if it has at most n bytes, otherwise its first n bytes or
// fewer, cut at a character boundary, followed by "…".
func Text(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
