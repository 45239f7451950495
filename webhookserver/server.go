// Package webhookserver is the HTTP server Kommo talks to: contact webhooks
// (authenticated, parsed and queued durably before the 2xx), the OAuth
// callback (the authorization code handed to the KommoIntegration through a
// Secret), and the widget's routes (the Unisender API key delivered with
// Kommo's signed X-Auth-Token, and a status panel). It runs as a sidecar of
// the manager; every replica serves.
package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
)

// Queue is the part of the beanstalkd producer (internal/queue) the server
// uses.
type Queue interface {
	Put(ctx context.Context, tube string, body []byte, pri uint32, delay, ttr time.Duration) (uint64, error)
	Ping(ctx context.Context) error
}

// Registry receives the server's metrics and serves /metrics.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Config holds the server's settings.
type Config struct {
	// Tube is the beanstalkd tube webhook jobs go to.
	Tube string
	// JobTTR is the time a worker may hold a job before beanstalkd gives it
	// to another; sized by the worker for its slowest call.
	JobTTR time.Duration
	// MaxBodyBytes bounds a webhook body (413 above it).
	MaxBodyBytes int64
	// AnswerWithin bounds the work done for one request once its body is
	// read: Kommo gives up after 2 s and counts the failure towards
	// disabling the hook, so a hung beanstalkd must cost a quick 503.
	AnswerWithin time.Duration
	// AllowedOrigins are the browser origins the widget routes accept
	// (CORS): exact origins, or "https://*.example.com" for any subdomain.
	AllowedOrigins []string
	// TokenLeeway is the clock skew tolerated on the widget token's
	// exp, nbf and iat.
	TokenLeeway time.Duration
	// MaxTokenLifetime refuses widget tokens that expire further ahead than
	// this (Kommo's live 30 minutes); it also bounds how long a token's
	// jti must be remembered.
	MaxTokenLifetime time.Duration
	// ReplayCacheSize bounds the jti entries remembered (per replica).
	ReplayCacheSize int
	// TenantRate is the jobs per second one tenant may queue (per
	// replica): a webhook costs one, a body naming more than
	// queue.MaxContactsPerJob contacts one per job. Above it, 429.
	TenantRate float64
	// TenantBurst is how many jobs a tenant may queue at once on top of
	// TenantRate (a bulk edit in Kommo sends many webhooks together).
	TenantBurst int
	// TenantInFlight bounds one tenant's webhooks being read and queued at
	// once (429 above it).
	TenantInFlight int
	// MaxInFlight bounds all webhooks being read and queued at once (503
	// above it): with MaxBodyBytes, it bounds the memory bodies hold.
	MaxInFlight int
	// MaxJobBytes is beanstalkd's max-job-size (the subcommand reads it at
	// start-up): a job that would be larger is split into smaller ones.
	MaxJobBytes int
	// Clock stamps jobs and checks token times; nil means time.Now.
	Clock func() time.Time
}

// DefaultAllowedOrigins are Kommo's and amoCRM's account hosts.
var DefaultAllowedOrigins = []string{"https://*.kommo.com", "https://*.amocrm.ru", "https://*.amocrm.com"}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		Tube:             "kommo-events",
		JobTTR:           2 * time.Minute,
		MaxBodyBytes:     1 << 20,
		AnswerWithin:     time.Second,
		AllowedOrigins:   DefaultAllowedOrigins,
		TokenLeeway:      30 * time.Second,
		MaxTokenLifetime: time.Hour,
		ReplayCacheSize:  100_000,
		// A busy account's Kommo sends a few webhooks a second; a bulk
		// edit of thousands of contacts sends a few hundred at once. 20
		// jobs a second is already 5,000 contacts a second, more than the
		// worker can read with the account's Kommo budget (7 requests a
		// second of 250 ids).
		TenantRate:     20,
		TenantBurst:    200,
		TenantInFlight: 8,
		// 32 bodies of MaxBodyBytes, with their parse, stay well within
		// the container's 128 MiB.
		MaxInFlight: 32,
		MaxJobBytes: queue.DefaultMaxJobSize,
	}
}

// Deps are the server's collaborators.
type Deps struct {
	// Tenants authenticates webhook deliveries (a *TenantIndex in
	// production).
	Tenants Directory
	// Cluster serves the OAuth callback and widget routes (a *Kube).
	Cluster Cluster
	Queue   Queue
	// HookKeys reads the Unisender keys that sign the event hook's
	// deliveries (a *Kube); nil serves no Unisender hook.
	HookKeys HookKeys
	Log      logr.Logger
	// Registry receives the metrics and is served on /metrics.
	Registry Registry
}

// Server serves the routes.
type Server struct {
	cfg      Config
	dir      Directory
	cluster  Cluster
	queue    Queue
	hookKeys HookKeys
	log      logr.Logger
	metrics  *metrics
	cors     corsPolicy
	replays  *replaySet
	admit    *admission
	mux      *http.ServeMux
}

// New builds the server.
func New(cfg Config, d Deps) (*Server, error) {
	cors, err := newCORSPolicy(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, dir: d.Tenants, cluster: d.Cluster, queue: d.Queue, hookKeys: d.HookKeys, log: d.Log,
		metrics: newMetrics(d.Registry), cors: cors, replays: newReplaySet(cfg.ReplayCacheSize),
		admit: newAdmission(cfg), mux: http.NewServeMux(),
	}
	s.mux.HandleFunc("POST "+contract.WebhookPathPrefix+"{tenant}/{secret}", s.handleKommoWebhook)
	s.mux.HandleFunc("POST "+contract.UnisenderHookPathPrefix+"{tenant}/{secret}", s.handleUnisenderHook)
	s.mux.HandleFunc("GET /oauth/callback", s.handleOAuthCallback)
	s.mux.Handle("POST /widget", s.cors.wrap(http.HandlerFunc(s.handleWidgetKey)))
	s.mux.Handle("GET /widget/status", s.cors.wrap(http.HandlerFunc(s.handleWidgetStatus)))
	s.mux.HandleFunc("OPTIONS /widget", s.cors.preflight)
	s.mux.HandleFunc("OPTIONS /widget/status", s.cors.preflight)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	return s, nil
}

func checkConfig(cfg Config) error {
	var problems []string
	if cfg.Tube == "" {
		problems = append(problems, "Tube is empty")
	}
	if cfg.MaxBodyBytes <= 0 {
		problems = append(problems, "MaxBodyBytes must be positive")
	}
	if cfg.AnswerWithin <= 0 || cfg.AnswerWithin >= 2*time.Second {
		problems = append(problems, "AnswerWithin must be between 0 and Kommo's 2s")
	}
	if cfg.TenantRate <= 0 || cfg.TenantBurst <= 0 || cfg.TenantInFlight <= 0 || cfg.MaxInFlight <= 0 {
		problems = append(problems, "TenantRate, TenantBurst, TenantInFlight and MaxInFlight must be positive")
	}
	if cfg.MaxJobBytes < queue.SmallestContactsJobBound {
		problems = append(problems, fmt.Sprintf("beanstalkd's max-job-size %d is below %d bytes, the largest job naming one contact: start beanstalkd with -z %d or more",
			cfg.MaxJobBytes, queue.SmallestContactsJobBound, queue.DefaultMaxJobSize))
	}
	if cfg.MaxTokenLifetime <= 0 {
		problems = append(problems, "MaxTokenLifetime must be positive")
	}
	if len(problems) > 0 {
		return errors.New("webhookserver config: " + strings.Join(problems, "; "))
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handleReady reports ready only while beanstalkd answers: a replica that
// cannot queue must not receive webhooks.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.queue.Ping(ctx); err != nil {
		http.Error(w, "beanstalkd unreachable", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Serve serves on l until ctx ends, then drains for up to 10 s.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		// net/http's own messages (bad TLS, panics) name no URL; route
		// them to the structured log.
		ErrorLog: log.New(logWriter{s.log.WithName("http")}, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ListenAndServe listens on addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, l)
}

// now is the clock used to stamp jobs and check tokens.
func (s *Server) now() time.Time {
	if s.cfg.Clock != nil {
		return s.cfg.Clock()
	}
	return time.Now()
}

type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
