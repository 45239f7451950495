package e2e

import "strings"

func normalize(e string) string { return strings.ToLower(strings.TrimSpace(e)) }
