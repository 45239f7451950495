// Package emailaddr holds the one rule that decides when two e-mail
// addresses are the same list member: the mapping writes Unisender rows in
// this form and the store keeps and looks up its e-mail map in it, so a
// second copy of the rule could not drift from the first.
package emailaddr

import "strings"

// Normalize trims and lower-cases an address: Unisender treats addresses
// case-insensitively, and so must the store's e-mail map.
func Normalize(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
