// Package deadletters is the `deadletters` subcommand: it lists the jobs
// the worker buried (poison jobs, requests Unisender refused, jobs that
// failed too often) with the reason, and puts them back on the queue once
// the cause is fixed.
//
//	kommo-unisender deadletters list [--tenant ns/name] [--all]
//	kommo-unisender deadletters requeue [--tube t] [--force] <id>...
//	kommo-unisender deadletters requeue --all [--tenant ns/name]
//
// The MySQL DSN and the beanstalkd address come from --mysql-dsn and
// --beanstalkd-addr, or $MYSQL_DSN and $BEANSTALKD_ADDR.
package deadletters

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/beanstalkd/go-beanstalk"

	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// Requeued jobs go back with the webhook server's priority and TTR.
const (
	requeuePriority = 1024
	requeueTTR      = 2 * time.Minute
	pageSize        = 500
)

// Run runs the subcommand with its arguments (os.Args[2:]).
func Run(ctx context.Context, args []string) error {
	return run(ctx, args, os.Stdout)
}

const usage = `usage:
  deadletters list [--tenant ns/name] [--all]
  deadletters requeue [--tube tube] [--force] <id>...
  deadletters requeue --all [--tenant ns/name]`

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "list":
		return list(ctx, args[1:], out)
	case "requeue":
		return requeue(ctx, args[1:], out)
	case "-h", "--help", "help":
		_, err := fmt.Fprintln(out, usage)
		return err
	}
	return fmt.Errorf("unknown verb %q\n%s", args[0], usage)
}

// common are the flags every verb takes.
type common struct {
	dsn, beanstalkd string
	tenant          string
}

func newFlagSet(name string, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet("deadletters "+name, flag.ContinueOnError)
	// The DSN holds a password: $MYSQL_DSN keeps it out of the process list.
	fs.StringVar(&c.dsn, "mysql-dsn", os.Getenv("MYSQL_DSN"), "MySQL DSN of the store (default: $MYSQL_DSN)")
	fs.StringVar(&c.tenant, "tenant", "", "only this tenant's dead letters (namespace/name)")
	return fs
}

func (c *common) openStore(ctx context.Context) (*store.Store, error) {
	if c.dsn == "" {
		return nil, errors.New("no database: set --mysql-dsn or $MYSQL_DSN")
	}
	if c.tenant != "" {
		if _, err := tenant.Parse(c.tenant); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, c.dsn)
}

func list(ctx context.Context, args []string, out io.Writer) error {
	var c common
	fs := newFlagSet("list", &c)
	all := fs.Bool("all", false, "include dead letters already requeued")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTENANT\tREASON\tATTEMPTS\tBURIED AT\tREQUEUED")
	n := 0
	err = eachDeadLetter(ctx, st, store.DeadLetterFilter{Tenant: c.tenant, OnlyPending: !*all}, func(d store.DeadLetter) error {
		n++
		tenantCol, requeued := d.Tenant, "-"
		if tenantCol == "" {
			tenantCol = "(undecodable)"
		}
		if d.RequeuedAt != nil {
			requeued = fmt.Sprintf("%s as job %d", d.RequeuedAt.UTC().Format(time.RFC3339), d.RequeuedJobID)
		}
		_, err := fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\t%s\n", d.ID, tenantCol, oneLine(d.Reason, 100),
			d.Attempts, d.BuriedAt.UTC().Format(time.RFC3339), requeued)
		return err
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if n == 0 {
		_, err = fmt.Fprintln(out, "no dead letters")
	}
	return err
}

// eachDeadLetter pages through the dead letters matching f.
func eachDeadLetter(ctx context.Context, st *store.Store, f store.DeadLetterFilter, fn func(store.DeadLetter) error) error {
	f.Limit = pageSize
	for {
		page, err := st.ListDeadLetters(ctx, f)
		if err != nil {
			return err
		}
		for _, d := range page {
			if err := fn(d); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}

func requeue(ctx context.Context, args []string, out io.Writer) error {
	var c common
	fs := newFlagSet("requeue", &c)
	fs.StringVar(&c.beanstalkd, "beanstalkd-addr", os.Getenv("BEANSTALKD_ADDR"), "beanstalkd host:port (default: $BEANSTALKD_ADDR)")
	all := fs.Bool("all", false, "requeue every dead letter not requeued yet (of --tenant, if given)")
	tube := fs.String("tube", "", "put the jobs into this tube (default: the tube each was buried in)")
	force := fs.Bool("force", false, "requeue a dead letter again even if it was requeued before")
	if err := parse(fs, args); err != nil {
		return err
	}
	ids, err := parseIDs(fs.Args())
	switch {
	case err != nil:
		return err
	case *all == (len(ids) > 0):
		return fmt.Errorf("give either dead letter ids or --all\n%s", usage)
	case c.beanstalkd == "":
		return errors.New("no beanstalkd: set --beanstalkd-addr or $BEANSTALKD_ADDR")
	case *tube != "":
		if err := queue.CheckTube(*tube); err != nil {
			return err
		}
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	r := &requeuer{st: st, producer: queue.NewProducer(c.beanstalkd, queue.ProducerOptions{Conns: 1}),
		addr: c.beanstalkd, tube: *tube, force: *force, out: out}
	defer r.producer.Close()
	if *all {
		// Collect first: requeueing marks rows, which would shift the pages.
		var pending []store.DeadLetter
		err := eachDeadLetter(ctx, st, store.DeadLetterFilter{Tenant: c.tenant, OnlyPending: true}, func(d store.DeadLetter) error {
			pending = append(pending, d)
			return nil
		})
		if err != nil {
			return err
		}
		for _, d := range pending {
			if err := r.requeue(ctx, d); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(out, "%d dead letters requeued\n", len(pending))
		return err
	}
	for _, id := range ids {
		d, err := st.GetDeadLetter(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no dead letter %d", id)
		}
		if err != nil {
			return err
		}
		if c.tenant != "" && d.Tenant != c.tenant {
			return fmt.Errorf("dead letter %d belongs to tenant %q, not %q", id, d.Tenant, c.tenant)
		}
		if err := r.requeue(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// requeuer puts dead letters back on the queue.
type requeuer struct {
	st       *store.Store
	producer *queue.Producer
	addr     string
	tube     string
	force    bool
	out      io.Writer
}

// requeue puts the dead letter's body back, marks it requeued, and then
// deletes the buried original if it is still there. A failure after the put
// can leave two copies of the job; the worker applies events idempotently.
func (r *requeuer) requeue(ctx context.Context, d store.DeadLetter) error {
	if d.RequeuedAt != nil && !r.force {
		_, err := fmt.Fprintf(r.out, "dead letter %d was already requeued as job %d; skipped (use --force)\n", d.ID, d.RequeuedJobID)
		return err
	}
	tube := r.tube
	if tube == "" {
		tube = d.Tube
	}
	newID, err := r.producer.Put(ctx, tube, d.Body, requeuePriority, 0, requeueTTR)
	if err != nil {
		return fmt.Errorf("dead letter %d: %w", d.ID, err)
	}
	if err := r.st.MarkRequeued(ctx, d.ID, newID); err != nil {
		return fmt.Errorf("dead letter %d was put back as job %d but could not be marked: %w", d.ID, newID, err)
	}
	removed, err := deleteBuried(r.addr, d.JobID, d.Body)
	if err != nil {
		fmt.Fprintf(r.out, "warning: dead letter %d: the buried job %d could not be removed: %v\n", d.ID, d.JobID, err)
	}
	note := ""
	if removed {
		note = ", buried original deleted"
	}
	_, err = fmt.Fprintf(r.out, "requeued dead letter %d as job %d in tube %s%s\n", d.ID, newID, tube, note)
	return err
}

// deleteBuried deletes job id if it is still buried with the same body (a
// job id could, after a beanstalkd restart without its binlog, name another
// job). It reports whether it deleted it.
func deleteBuried(addr string, id uint64, body []byte) (bool, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false, err
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return false, err
	}
	c := beanstalk.NewConn(nc)
	stats, err := c.StatsJob(id)
	if errors.Is(err, beanstalk.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if stats["state"] != "buried" {
		return false, nil
	}
	current, err := c.Peek(id)
	if errors.Is(err, beanstalk.ErrNotFound) {
		return false, nil
	}
	if err != nil || string(current) != string(body) {
		return false, err
	}
	if err := c.Delete(id); err != nil && !errors.Is(err, beanstalk.ErrNotFound) {
		return false, err
	}
	return true, nil
}

func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return errors.New(usage)
	}
	return err
}

func parseIDs(args []string) ([]int64, error) {
	ids := make([]int64, 0, len(args))
	for _, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("%q is not a dead letter id (flags go before the ids)", a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// oneLine fits a reason into a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
