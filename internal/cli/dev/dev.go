// Package dev is the `dev` subcommand behind `make dev`: the whole system on
// this machine, a sample tenant imported from the sandbox, and the commands
// to poke it. Ctrl-C stops everything and removes what it started.
package dev

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

type options struct {
	crdDir        string
	contacts      int
	tokenTTL      time.Duration
	publicBaseURL string
	real          bool
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.StringVar(&o.crdDir, "crd-dir", "config/crd/bases", "directory of the CRD manifests")
	fs.IntVar(&o.contacts, "seed-contacts", 3000, "contacts in the sandbox Kommo account")
	fs.DurationVar(&o.tokenTTL, "token-ttl", 10*time.Minute, "lifetime of sandbox Kommo access tokens (short, so refreshes happen while you watch)")
	fs.StringVar(&o.publicBaseURL, "public-base-url", "", "real mode: public URL of the webhook server (e.g. an ngrok or localtunnel URL)")
	fs.BoolVar(&o.real, "real", false, "real mode: no sandbox; declare your tenant with kubectl (see README)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.real && o.publicBaseURL == "" {
		return o, errors.New("--real needs --public-base-url: Kommo must reach the webhook server; expose it with `npx localtunnel --port <port>` or `ngrok http <port>`")
	}
	return o, nil
}

// Run is the `dev` subcommand.
func Run(ctx context.Context, args []string) error {
	o, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if os.Getenv(testenv.EnvKubeAssets) == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make dev`, which builds the control-plane binaries")
	}
	if err := testenv.EnsureBinaries("mariadbd", "mariadb-install-db", "beanstalkd"); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kommo-unisender-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out := os.Stdout
	env, err := devenv.Start(ctx, devenv.Options{
		Binary: bin, Dir: dir, CRDDir: o.crdDir, Output: out,
		Sandbox: !o.real, SandboxAccessTokenTTL: o.tokenTTL, SeedContacts: o.contacts,
		PublicBaseURL: o.publicBaseURL,
	})
	if err != nil {
		return err
	}
	defer env.Stop()
	if o.real {
		printRealMode(out, env)
	} else if err := runSandboxDemo(ctx, out, env); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping…")
	return nil
}

func runSandboxDemo(ctx context.Context, out io.Writer, env *devenv.Env) error {
	if err := env.ApplySampleTenant(ctx); err != nil {
		return err
	}
	if err := env.ApplyRoutedSample(ctx); err != nil {
		return err
	}
	if err := showImport(ctx, out, env); err != nil {
		return err
	}
	printNextSteps(out, env)
	return nil
}

// showImport draws the initial import's progress from the binding's status
// until it completes.
func showImport(ctx context.Context, out io.Writer, env *devenv.Env) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		st, err := env.SampleBindingStatus(ctx)
		if err != nil {
			continue
		}
		line := progressLine(st)
		if line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		if st.Import != nil && st.Import.Phase == v1alpha1.ImportCompleted {
			fmt.Fprintln(out, "dev          | import done")
			return nil
		}
	}
}

func progressLine(st v1alpha1.UnisenderBindingStatus) string {
	const width = 30
	if st.Import == nil {
		return "dev          | import: waiting for the tenant to become ready (" + readyReason(st) + ")"
	}
	imported, total := st.Import.Imported, st.Import.Total
	if st.Import.Phase != v1alpha1.ImportCompleted {
		// Kommo has no contact count: the total grows with the pages read,
		// so a bar would sit near full. Show the count instead.
		return fmt.Sprintf("dev          | import: %d contacts imported so far (%s)", imported, st.Import.Phase)
	}
	filled := 0
	if total > 0 {
		filled = int(min(imported, total) * width / total)
	}
	return fmt.Sprintf("dev          | import: [%s%s] %d/%d %s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), imported, total, st.Import.Phase)
}

func readyReason(st v1alpha1.UnisenderBindingStatus) string {
	for _, c := range st.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return c.Reason
		}
	}
	return "reconciling"
}

func printNextSteps(out io.Writer, env *devenv.Env) {
	kubectl := filepath.Join(os.Getenv(testenv.EnvKubeAssets), "kubectl")
	fmt.Fprintf(out, `
The operator is running. In another terminal:

  export KUBECONFIG=%[1]s
  %[2]s get kommointegrations,unisenderbindings -A

  # create a contact in the sandbox Kommo (Kommo sends the webhook, the worker syncs it):
  curl -s -X POST %[3]s/_admin/accounts/acme/contacts -H 'Content-Type: application/json' \
       -d '{"name":"Ada Lovelace","emails":["ada@example.com"],"phones":["+44 20 7946 0000"]}'
  # change it (use the id printed above) or delete it:
  curl -s -X PUT %[3]s/_admin/accounts/acme/contacts/<id> -H 'Content-Type: application/json' \
       -d '{"name":"Ada King","emails":["ada.king@example.com"]}'
  curl -s -X DELETE %[3]s/_admin/accounts/acme/contacts/<id>

  # routing (bindings acme-customers / acme-win-back): a deal moved to won (142) or lost (143)
  # moves its contact between the lists "Customers" and "Win-back"
  curl -s %[3]s/_admin/accounts/acme/leads
  curl -s -X PUT %[3]s/_admin/accounts/acme/leads/<lead id>/status -H 'Content-Type: application/json' \
       -d '{"status_id":142}'

  # the Unisender side: lists, then the members of the list (id from the first call)
  curl -s -H 'X-Unisender-Api-Key: %[4]s' %[5]s/_admin/lists
  curl -s -H 'X-Unisender-Api-Key: %[4]s' %[5]s/_admin/contacts/ada@example.com

  # sync health: In-Sync and Refused in `+"`get ub`"+`, every figure in `+"`describe ub`"+`, and the
  # records Unisender refused or the sync left out (try "emails":["not-an-email"], ["info@example.org"] or []):
  %[2]s describe ub -n demo acme-newsletter
  MYSQL_DSN="$(cat %[6]s)" %[7]s report demo/acme-newsletter

Ctrl-C stops everything.
`, env.Kubeconfig, kubectl, env.KommoURL, devenv.SandboxUnisenderKey, env.UnisenderURL, dsnFile(env), self())
}

// dsnFile writes the dev database's DSN next to the kubeconfig, readable by
// the owner only, so that the printed commands do not show its password.
func dsnFile(env *devenv.Env) string {
	path := filepath.Join(filepath.Dir(env.Kubeconfig), "mysql-dsn")
	if err := os.WriteFile(path, []byte(env.MySQLDSN()), 0o600); err != nil {
		return "<" + err.Error() + ">"
	}
	return path
}

// self is this binary's path, for the printed commands.
func self() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "kommo-unisender"
}

func printRealMode(out io.Writer, env *devenv.Env) {
	kubectl := filepath.Join(os.Getenv(testenv.EnvKubeAssets), "kubectl")
	fmt.Fprintf(out, `
Real mode: the operator is running against the real Kommo and Unisender.

  export KUBECONFIG=%[1]s
  The webhook server listens on %[2]s; Kommo must reach it through your public URL.
  Declare your tenant (Secrets + KommoIntegration + UnisenderBinding): see config/samples/, then
  %[3]s apply -f <your tenant.yaml>
  The Kommo widget archive is built by `+"`make widget`"+` into dist/widget.zip.

Ctrl-C stops everything.
`, env.Kubeconfig, env.WebhookURL, kubectl)
}
