package widget_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

// startWidgetServer runs the real webhook server as the webhookserver
// subcommand builds it: a controller-runtime cache on the test control plane
// scoped to the tenant's namespace, a beanstalkd producer, and the server's
// routes, served over TLS (the widget sends keys to https addresses only).
// The widget's browser origin is the only one allowed by CORS. It returns
// the server's https URL.
func startWidgetServer(ctx context.Context, t *testing.T, namespace, origin string) string {
	t.Helper()
	kc, err := webhookserver.NewKube(kube.Config, webhookserver.KubeOptions{Namespaces: []string{namespace}})
	if err != nil {
		t.Fatal(err)
	}
	cacheCtx, stopCache := context.WithCancel(ctx)
	t.Cleanup(stopCache)
	if err := kc.Start(cacheCtx); err != nil {
		t.Fatalf("starting the cache: %v", err)
	}
	producer := queue.NewProducer(testenv.BeanstalkdAddr(t), queue.ProducerOptions{Conns: 2})
	t.Cleanup(func() { _ = producer.Close() })

	cfg := webhookserver.DefaultConfig()
	cfg.Tube = testenv.Tube("widget")
	cfg.AllowedOrigins = []string{origin}
	srv, err := webhookserver.New(cfg, webhookserver.Deps{
		Tenants:  kc.Tenants(),
		Cluster:  kc,
		Queue:    producer,
		Log:      testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
		Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(srv)
	t.Cleanup(hs.Close)
	return hs.URL
}
