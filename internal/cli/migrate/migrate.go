// Package migrate is the `migrate` subcommand: it brings the MySQL schema to
// the version embedded in the binary (for a Job or an init container, when
// the manager's own start-up migration is switched off), or prints where the
// schema stands.
package migrate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// RunMigrateCommand runs the subcommand with its flags (os.Args[2:]).
func RunMigrateCommand(ctx context.Context, args []string) error {
	return run(ctx, args, os.Stdout)
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var dsn string
	// The DSN holds a password: $MYSQL_DSN keeps it out of the process list.
	fs.StringVar(&dsn, "dsn", os.Getenv("MYSQL_DSN"), "MySQL DSN, user:pass@tcp(host:3306)/db (default: $MYSQL_DSN)")
	fs.StringVar(&dsn, "mysql-dsn", os.Getenv("MYSQL_DSN"), "the same as --dsn, named as the manager's flag")
	status := fs.Bool("status", false, "print each migration's version and state, and change nothing")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if dsn == "" {
		return errors.New("no database: set --dsn or $MYSQL_DSN")
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	if *status {
		return printStatus(ctx, st, out)
	}
	return migrate(ctx, st, out)
}

func migrate(ctx context.Context, st *store.Store, out io.Writer) error {
	before, _, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	after, latest, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if after == before {
		_, err = fmt.Fprintf(out, "schema already at version %d (latest embedded: %d)\n", after, latest)
	} else {
		_, err = fmt.Fprintf(out, "schema migrated from version %d to %d (latest embedded: %d)\n", before, after, latest)
	}
	return err
}

func printStatus(ctx context.Context, st *store.Store, out io.Writer) error {
	migrations, err := st.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tSTATE\tAPPLIED AT\tMIGRATION")
	for _, m := range migrations {
		state, at := "pending", "-"
		if m.Applied {
			state, at = "applied", m.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", m.Version, state, at, m.Name)
	}
	return w.Flush()
}
