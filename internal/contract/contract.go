// Package contract holds what two processes of the operator must agree on,
// each written once: the routes the manager gives Kommo and the webhook
// server serves, the Secrets one writes and the other reads, and the types
// their Kubernetes clients decode. Both sides import it, so neither imports
// the other.
package contract
