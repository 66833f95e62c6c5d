package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/greenlane-pos/greenlane/lanedb"
	"github.com/greenlane-pos/greenlane/presell"
	"github.com/greenlane-pos/greenlane/protocol"
	"github.com/greenlane-pos/greenlane/salesbuilder"
)

func runPresell(args []string, stdout, stderr io.Writer) error {
	return runSubcommand("presell", []subcommand{
		{"list", "list [--db PATH]", presellList},
		{"void", "void TICKET|PHYSKEY [--db PATH] [--reason TEXT] [--force]", presellVoid},
		{"expire", "expire [--db PATH] [--older-than 12h]", presellExpire},
	}, "", args, stdout, stderr)
}

// openService opens the lane DB (which may be in use by a running server:
// this is then a second process writing it) with the presell workflow over
// it.
func openService(path string, opts salesbuilder.Options) (*presell.Workflow, func(), error) {
	db, err := openExisting(path)
	if err != nil {
		return nil, nil, err
	}
	w := db.NewWriter(lanedb.WriterOptions{}) // no batching: one command, one transaction
	svc, err := salesbuilder.New(context.Background(), db, w, opts)
	if err != nil {
		w.Close()
		db.Close()
		return nil, nil, err
	}
	return presell.New(svc), func() { w.Close(); db.Close() }, nil
}

func presellList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("presell list", "presell list [--db PATH]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	svc, done, err := openService(*dbPath, salesbuilder.Options{})
	if err != nil {
		return err
	}
	defer done()
	rows, err := svc.Open(context.Background())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TICKET\tWORD\tTOTAL\tPAID\tLINES\tCUSTOMER\tTABLET\tAGE\tCLAIMED BY\tPHYSKEY")
	for _, r := range rows {
		claimed := "-"
		if r.ClaimedBy != nil {
			claimed = *r.ClaimedBy + " until " + *r.ClaimExpires
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", deref(r.Ticket), derefStr(r.TicketWord), r.SaleTotal, *r.Paid, r.Lines,
			derefStr(r.Customer), r.Tablet, (time.Duration(r.Age) * time.Second).String(), claimed, r.Physkey)
	}
	return tw.Flush()
}

func deref(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func derefStr(p *string) string {
	if p == nil || *p == "" {
		return "-"
	}
	return *p
}

func presellVoid(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("presell void", "presell void TICKET|PHYSKEY [--db PATH] [--reason TEXT] [--force]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file")
	reason := fs.String("reason", "voided from the command line", "why, kept in the journal")
	force := fs.Bool("force", false, "void it even while a counter holds a live claim on it")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	which := fs.Arg(0)
	if which == "" {
		fs.Usage()
		return usagef("presell void needs a ticket number or a physkey")
	}
	svc, done, err := openService(*dbPath, salesbuilder.Options{})
	if err != nil {
		return err
	}
	defer done()
	physkey, err := svc.Void(context.Background(), which, "cli", *reason, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "voided presell %s\n", physkey)
	return nil
}

func presellExpire(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("presell expire", "presell expire [--db PATH] [--older-than 12h]", stderr)
	dbPath := fs.String("db", defaultDB, "lane DB file")
	olderThan := fs.Duration("older-than", salesbuilder.DefaultOptions().PresellMaxAge, "void open presells untouched for this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *olderThan <= 0 {
		return usagef("--older-than must be positive")
	}
	svc, done, err := openService(*dbPath, salesbuilder.Options{})
	if err != nil {
		return err
	}
	defer done()
	voided, err := svc.ExpireAbandoned(context.Background(), *olderThan, "cli")
	for _, pk := range voided {
		fmt.Fprintf(stdout, "expired presell %s\n", pk)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d presells older than %s voided\n", len(voided), *olderThan)
	held, err := svc.HoldingMoney(context.Background(), *olderThan)
	for _, h := range held {
		ticket := "-"
		if h.Ticket.Valid {
			ticket = fmt.Sprint(h.Ticket.Int64)
		}
		fmt.Fprintf(stdout, "kept presell %s (ticket %s): it holds %s in payments; recall it at a counter to finish it or refund them\n",
			h.Physkey, ticket, protocol.Money(h.PaidCents).Dollars())
	}
	return err
}
