// Command kommo-unisender is the single binary of the operator: every process
// (manager, webhook server, worker, migrations, sandbox, dev) is a subcommand.
// The production image is built with -tags production, which leaves out the
// dev tooling (devtools.go).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/kommo-unisender/kommo-unisender/internal/cli/deadletters"
	"github.com/kommo-unisender/kommo-unisender/internal/cli/manager"
	"github.com/kommo-unisender/kommo-unisender/internal/cli/migrate"
	"github.com/kommo-unisender/kommo-unisender/internal/cli/report"
	"github.com/kommo-unisender/kommo-unisender/internal/cli/webhookserver"
	"github.com/kommo-unisender/kommo-unisender/internal/cli/worker"
	"github.com/kommo-unisender/kommo-unisender/internal/memlimit"
)

// command is one subcommand of the binary.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands lists every process the binary can be.
var commands = map[string]command{
	"deadletters":   {"list buried jobs and re-enqueue them", deadletters.Run},
	"manager":       {"run the reconcilers (leader-elected)", manager.Run},
	"migrate":       {"apply the MySQL schema migrations (also run by the manager at start-up)", migrate.RunMigrateCommand},
	"worker":        {"apply queued Kommo events to Unisender (a Deployment that scales out)", worker.Run},
	"webhookserver": {"serve Kommo's webhooks, the OAuth callback and the widget routes", webhookserver.Run},
	"report":        {"list a binding's refused and excluded records with their reasons", report.Run},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kommo-unisender <command> [flags]")
	fmt.Fprintln(os.Stderr, "\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-14s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'kommo-unisender <command> --help' for the flags of a command.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "--help" || os.Args[1] == "-h" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	// Manager, webhook server and worker alike: the heap gives way before
	// the container's memory limit is reached.
	if _, err := memlimit.FromCgroup("/sys/fs/cgroup"); err != nil {
		fmt.Fprintf(os.Stderr, "GOMEMLIMIT from the container's limit: %v (left unset)\n", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
