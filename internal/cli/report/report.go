// Package report is the `report` subcommand: it lists the records a
// binding's sync could not bring into its Unisender list — addresses
// Unisender refused (invalid, role address, …) and contacts the sync
// skipped (no e-mail, companies) — with the reason and the Kommo contact
// id, so that the contacts can be fixed in Kommo.
//
//	kommo-unisender report <namespace>/<binding> [--reason r] [-o table|json] [--limit n]
//
// The MySQL DSN comes from --mysql-dsn or $MYSQL_DSN.
package report

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

const usage = "usage: report <namespace>/<binding> [--reason reason] [-o table|json] [--limit n] [--mysql-dsn dsn]"

// Run runs the subcommand with its arguments (os.Args[2:]).
func Run(ctx context.Context, args []string) error {
	return run(ctx, args, os.Stdout)
}

type options struct {
	dsn, reason, output string
	limit               int
	tenant              tenant.Key
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, o.dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	refusals, err := st.ListRefusals(ctx, store.RefusalFilter{Tenant: o.tenant.String(), Reason: o.reason, Limit: o.limit})
	if err != nil {
		return err
	}
	if o.output == "json" {
		return writeJSON(out, o.tenant, refusals)
	}
	return writeTable(out, refusals)
}

// parse takes the binding before or after the flags.
func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The DSN holds a password: $MYSQL_DSN keeps it out of the process list.
	fs.StringVar(&o.dsn, "mysql-dsn", os.Getenv("MYSQL_DSN"), "MySQL DSN of the store (default: $MYSQL_DSN)")
	fs.StringVar(&o.reason, "reason", "", "only this reason (invalid_email, role_address, no_email, company, …)")
	fs.StringVar(&o.output, "o", "table", "output: table or json")
	fs.IntVar(&o.limit, "limit", store.MaxRefusalsPerTenant, "at most this many records, newest first")
	var positional []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return o, fmt.Errorf("%w\n%s", err, usage)
		}
		if fs.NArg() == 0 {
			break
		}
		positional, args = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
	if len(positional) != 1 {
		return o, errors.New(usage)
	}
	key, err := tenant.Parse(positional[0])
	if err != nil {
		return o, fmt.Errorf("%w\n%s", err, usage)
	}
	o.tenant = key
	switch {
	case o.output != "table" && o.output != "json":
		return o, fmt.Errorf("-o %q: want table or json", o.output)
	case o.limit <= 0:
		return o, fmt.Errorf("--limit %d: want a positive number", o.limit)
	case o.dsn == "":
		return o, errors.New("no database: set --mysql-dsn or $MYSQL_DSN")
	}
	return o, nil
}

func writeJSON(out io.Writer, key tenant.Key, refusals []store.Refusal) error {
	if refusals == nil {
		refusals = []store.Refusal{}
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Binding  string          `json:"binding"`
		Refusals []store.Refusal `json:"records"`
	}{key.String(), refusals})
}

func writeTable(out io.Writer, refusals []store.Refusal) error {
	if len(refusals) == 0 {
		_, err := fmt.Fprintln(out, "no refused or excluded records")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONTACT\tEMAIL\tSOURCE\tREASON\tRECORDED AT\tMESSAGE")
	for _, r := range refusals {
		email := cell(r.Email, 80)
		if email == "" {
			email = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", r.ContactID, email, r.Source, r.Reason,
			r.RecordedAt.UTC().Format(time.RFC3339), cell(r.Message, 100))
	}
	return w.Flush()
}

// cell fits text that came from Kommo or Unisender into a table cell: one
// line, no control characters (a terminal would act on them), bounded.
func cell(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case !unicode.IsPrint(r):
			return '?'
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
