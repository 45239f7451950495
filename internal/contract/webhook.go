package contract

// WebhookPathPrefix is the path of the Kommo webhook route under the public
// base URL: <base>/kommo/webhooks/<namespace>.<name>/<secret>. The manager
// registers such URLs with Kommo; the webhook server serves them.
const WebhookPathPrefix = "/kommo/webhooks/"
