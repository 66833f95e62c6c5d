// Package pgtest gives tests a fresh PostgreSQL database on the server
// GREENLANE_TEST_PG names (.ci/pg start makes one; .ci/run always does).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// ServerURL is the PostgreSQL server the tests may use (GREENLANE_TEST_PG;
// .ci/pg start makes one). Without it the test is skipped, saying why,
// except under CI, where that fails it.
func ServerURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GREENLANE_TEST_PG")
	if base == "" {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal("GREENLANE_TEST_PG is unset under CI: .ci/run must start PostgreSQL (.ci/pg start) and export its URL")
		}
		t.Skip("GREENLANE_TEST_PG is unset: no PostgreSQL server for the store mode (eval \"$(.ci/pg start)\" makes one)")
	}
	return base
}

// FreshDB creates an empty database and returns its URL; it is dropped
// when the test ends. Without GREENLANE_TEST_PG the test is skipped, saying
// why, except under CI, where that fails it: there the PostgreSQL tests
// must never quietly stop running.
func FreshDB(t testing.TB) string {
	t.Helper()
	base := ServerURL(t)
	ctx := context.Background()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "greenlane_t_" + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to GREENLANE_TEST_PG: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("connect to drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("GREENLANE_TEST_PG does not parse as a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Switch returns a function that turns the database at dbURL (a FreshDB)
// off and on, as an outage: off refuses new connections and ends the open
// ones, on lets them in again. The database is switched on when the test
// ends.
func Switch(t testing.TB, dbURL string) func(on bool) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin, err := pgx.Connect(ctx, ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(ctx) }) // after the switch-on below: cleanups run last first
	set := func(on bool) {
		t.Helper()
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", name, on)); err != nil {
			t.Fatal(err)
		}
		if !on {
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() { set(true) })
	return set
}
