package truncate

import (
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"longer text", 6, "longer…"},
		{"приветствие", 5, "пр…"}, // 2-byte letters: never half of one
		{"€uro", 2, "…"},          // 3-byte sign: nothing of it fits
		{"abc", 0, "…"},
	} {
		got := Text(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("Text(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
