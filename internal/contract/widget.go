package contract

// WidgetKeySecretKey is the key of the widget-delivered Unisender API key
// in the Secret WidgetKeySecretName: the webhook server's widget route
// writes it, the UnisenderBinding reconciler and the workers read it.
const WidgetKeySecretKey = "apiKey"

// WidgetKeySecretName is the Secret the Kommo widget route writes a
// binding's Unisender API key into (used when spec.allowWidgetKey is true).
func WidgetKeySecretName(binding string) string { return binding + "-widget-key" }
