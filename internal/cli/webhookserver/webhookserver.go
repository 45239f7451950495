// Package webhookserver is the `webhookserver` subcommand: the HTTP server
// Kommo posts webhooks to (and the OAuth callback and widget routes), run as
// a sidecar of the manager. Every replica serves; none needs leadership.
package webhookserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kommo-unisender/kommo-unisender/internal/cli/kubeconfig"
	"github.com/kommo-unisender/kommo-unisender/internal/namespaces"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

// Options are the subcommand's settings, from flags.
type Options struct {
	Listen         string
	BeanstalkdAddr string
	// BeanstalkdConns is the producer's pool: how many puts can wait for
	// INSERTED at once.
	BeanstalkdConns int
	Namespaces      []string
	// OperatorNamespace holds the OAuth state key and the KommoApps'
	// client secrets.
	OperatorNamespace string
	Kubeconfig        string
	Server            webhookserver.Config
	Zap               zap.Options
}

// ParseFlags reads the flags. BEANSTALKD_ADDR is the default of
// --beanstalkd-addr.
func ParseFlags(args []string) (Options, error) {
	def := webhookserver.DefaultConfig()
	o := Options{Server: def}
	fs := flag.NewFlagSet("webhookserver", flag.ContinueOnError)
	fs.StringVar(&o.Listen, "listen", ":8443", "address to serve on (plain HTTP; TLS terminates at the ingress)")
	fs.StringVar(&o.BeanstalkdAddr, "beanstalkd-addr", os.Getenv("BEANSTALKD_ADDR"), "beanstalkd host:port (default: $BEANSTALKD_ADDR)")
	fs.IntVar(&o.BeanstalkdConns, "beanstalkd-conns", 32, "beanstalkd connections for concurrent puts")
	fs.StringVar(&o.Server.Tube, "tube", def.Tube, "beanstalkd tube of webhook jobs")
	fs.Int64Var(&o.Server.MaxBodyBytes, "max-body-bytes", def.MaxBodyBytes, "largest webhook body accepted (413 above)")
	fs.DurationVar(&o.Server.AnswerWithin, "answer-within", def.AnswerWithin, "time budget of one webhook once its headers are read (Kommo waits 2s)")
	fs.DurationVar(&o.Server.JobTTR, "job-ttr", def.JobTTR, "beanstalkd TTR of webhook jobs")
	origins := fs.String("allowed-origins", strings.Join(def.AllowedOrigins, ","), "comma-separated browser origins allowed to call the widget routes (https://*.domain for any subdomain)")
	fs.Float64Var(&o.Server.TenantRate, "tenant-rate", def.TenantRate, "jobs per second one tenant may queue, per replica (a webhook is one job per 250 contacts it names; 429 above)")
	fs.IntVar(&o.Server.TenantBurst, "tenant-burst", def.TenantBurst, "jobs one tenant may queue at once above --tenant-rate")
	fs.IntVar(&o.Server.TenantInFlight, "tenant-in-flight", def.TenantInFlight, "webhooks of one tenant read and queued at once (429 above)")
	fs.IntVar(&o.Server.MaxInFlight, "max-in-flight", def.MaxInFlight, "webhooks read and queued at once, all tenants (503 above; bounds the memory of bodies)")
	fs.DurationVar(&o.Server.TokenLeeway, "token-leeway", def.TokenLeeway, "clock skew tolerated on widget tokens")
	fs.Var((*namespaces.List)(&o.Namespaces), "namespaces", namespaces.FlagUsage)
	fs.StringVar(&o.OperatorNamespace, "operator-namespace", kubeconfig.PodNamespace(), "namespace of the OAuth state key and the KommoApps' client secrets (default: $POD_NAMESPACE, else the pod's namespace)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, or $KUBECONFIG)")
	o.Zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.BeanstalkdAddr == "" {
		return o, errors.New("--beanstalkd-addr (or $BEANSTALKD_ADDR) is required")
	}
	if err := queue.CheckTube(o.Server.Tube); err != nil {
		return o, fmt.Errorf("--tube: %w", err)
	}
	o.Server.AllowedOrigins = nil
	for _, origin := range strings.Split(*origins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			o.Server.AllowedOrigins = append(o.Server.AllowedOrigins, origin)
		}
	}
	return o, nil
}

// Run is the `webhookserver` subcommand. It returns when ctx ends (nil,
// after draining requests in flight) or the server fails.
func Run(ctx context.Context, args []string) error {
	o, err := ParseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// Every webhook allocates its form, events and job; the live heap
		// (the cache) is small, so the default GOGC=100 collects very
		// often. 400 cut the server's CPU per webhook by about a tenth in
		// BenchmarkWebhookIngestWrk, for a heap of a few tens of MB.
		debug.SetGCPercent(400)
	}
	logger := zap.New(zap.UseFlagOptions(&o.Zap))
	ctrl.SetLogger(logger)
	log := logger.WithName("webhookserver")
	cfg, err := kubeconfig.Load(o.Kubeconfig)
	if err != nil {
		return err
	}
	kube, err := webhookserver.NewKube(cfg, webhookserver.KubeOptions{Namespaces: o.Namespaces, OperatorNamespace: o.OperatorNamespace})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the cache
	if err := kube.Start(ctx); err != nil {
		return fmt.Errorf("starting the cache: %w", err)
	}
	producer := queue.NewProducer(o.BeanstalkdAddr, queue.ProducerOptions{Conns: o.BeanstalkdConns})
	defer producer.Close()
	if o.Server.MaxJobBytes, err = queue.WaitMaxJobSize(ctx, producer, log); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := webhookserver.New(o.Server, webhookserver.Deps{
		Tenants: kube.Tenants(), Cluster: kube, Queue: producer, HookKeys: kube, Log: log, Registry: reg,
	})
	if err != nil {
		return err
	}
	log.Info("serving", "listen", o.Listen, "tube", o.Server.Tube, "namespaces", o.Namespaces, "maxJobBytes", o.Server.MaxJobBytes)
	return srv.ListenAndServe(ctx, o.Listen)
}
