package contract

// WebhookPathPrefix is the path of the Kommo webhook route under the public
// base URL: <base>/kommo/webhooks/<namespace>.<name>/<secret>. The manager
// registers such URLs with Kommo; the webhook server serves them.
const WebhookPathPrefix = "/kommo/webhooks/"

// UnisenderHookPathPrefix is the path of Unisender's event hook route
// under the public base URL: <base>/unisender/hooks/<namespace>.<name>/<secret>
// (the binding's webhook secret). Unisender holds the URL setHook gave it.
const UnisenderHookPathPrefix = "/unisender/hooks/"

// WebhookSecretKey is the key of the URL secret (32 random bytes, hex) in
// the binding's webhook Secret, which the UnisenderBinding reconciler
// owns and names in status.webhookSecretName, and the webhook server reads.
const WebhookSecretKey = "secret"

// WebhookSecretName is the Secret holding a binding's webhook URL secret.
func WebhookSecretName(binding string) string { return binding + "-webhook" }
