package lanedb

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestCreateAPIKeyName: a key name is printed in logs, tables and pages,
// so one that could forge a line or turn text around is refused.
func TestCreateAPIKeyName(t *testing.T) {
	db := openTemp(t)
	tests := []struct {
		name string
		ok   bool
	}{
		{"tablet-3", true},
		{"  counter 1  ", true}, // trimmed
		{"Café Ånd 店", true},
		{strings.Repeat("x", MaxKeyNameLen), true},
		{strings.Repeat("é", MaxKeyNameLen), true}, // characters, not bytes
		{"", false},
		{"   ", false},
		{strings.Repeat("x", MaxKeyNameLen+1), false},
		{strings.Repeat("x", 5000), false},
		{"evil\nlevel=ERROR msg=forged", false},
		{"tab\there", false},
		{"\x1b[31mred\x1b[0m", false},
		{"abc\u202egpj.exe", false}, // right-to-left override
		{"zero\u200bwidth", false},
		{"line\u2028sep", false},
		{"nb\u00a0sp", false},
		{"bad\xffutf8", false},
	}
	for i, tt := range tests {
		t.Run(tt.name[:min(len(tt.name), 20)], func(t *testing.T) {
			_, err := db.CreateAPIKey(context.Background(), tt.name, []string{"presell"})
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadKeyName)) {
				t.Fatalf("case %d: CreateAPIKey(%q) = %v, want ok %v", i, tt.name, err, tt.ok)
			}
			if err != nil && strings.ContainsAny(err.Error(), "\n\x1b\u202e") {
				t.Errorf("the refusal repeats the name raw: %q", err)
			}
		})
	}
}

func TestRedactKeys(t *testing.T) {
	const secret = "A2gl3EHh6FKat54fY8XaqniKa2cup6IR"
	tests := []struct{ in, want string }{
		{"/fd1/products/glk.og54q2o23y3fv5yr." + secret, "/fd1/products/glk.og54q2o23y3fv5yr.[redacted]"},
		{"/glk.og54q2o23y3fv5yr." + secret + "/x?y", "/glk.og54q2o23y3fv5yr.[redacted]/x?y"},
		{"a glk.id1.s-e_c and glk.id2.t", "a glk.id1.[redacted] and glk.id2.[redacted]"},
		{"glk..s3cr3t", "glk..[redacted]"}, // no id: the secret is still hidden
		{"/fd1/products/list", "/fd1/products/list"},
		{"glk.onlyid", "glk.onlyid"},
		{"glk.id.", "glk.id."},
		{"fd1.glk.x", "fd1.glk.x"},
		{"glk.", "glk."},
	}
	for _, tt := range tests {
		if got := RedactKeys(tt.in); got != tt.want {
			t.Errorf("RedactKeys(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	db := openTemp(t)
	key, err := db.CreateAPIKey(context.Background(), "tablet-1", []string{"presell"})
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(key, "glk."), ".")
	if got := RedactKeys("/x/" + key); got != "/x/glk."+id+".[redacted]" {
		t.Errorf("a real key: %q", got)
	}
}

// TestRevokeAPIKeyAmbiguous: a key named like another key's id is not a
// reason to revoke whichever row comes first: the revoke is refused and
// names both; each is revoked by its id.
func TestRevokeAPIKeyAmbiguous(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	if _, err := db.CreateAPIKey(ctx, "counter-1", []string{"counter"}); err != nil {
		t.Fatal(err)
	}
	keys, err := db.ListAPIKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("list: %v %v", keys, err)
	}
	counterID := keys[0].KeyID
	if _, err := db.CreateAPIKey(ctx, counterID, []string{"presell"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeAPIKey(ctx, counterID); err == nil || !strings.Contains(err.Error(), "revoke by id") {
		t.Fatalf("revoke %q, both an id and a name: %v, want it refused", counterID, err)
	}
	keys, _ = db.ListAPIKeys(ctx)
	for _, k := range keys {
		if k.RevokedUTC.Valid {
			t.Fatalf("a refused revoke revoked %q", k.Name)
		}
	}
	var tabletID string
	for _, k := range keys {
		if k.Name == counterID {
			tabletID = k.KeyID
		}
	}
	for _, id := range []string{tabletID, counterID} {
		if got, err := db.RevokeAPIKey(ctx, id); err != nil || got != id {
			t.Fatalf("revoke by id %s: %q %v", id, got, err)
		}
	}
}

// TestKeyNamesAreNeverGivenTwice: a live key's name is taken, and so is a
// revoked key's: the sales it made carry the name, and a new key of that
// name would take over some of them and not others.
func TestKeyNamesAreNeverGivenTwice(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	if _, err := db.CreateAPIKey(ctx, "tablet-1", []string{"presell"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAPIKey(ctx, " tablet-1 ", []string{"presell"}); !errors.Is(err, ErrKeyNameTaken) {
		t.Fatalf("a live key's name again: %v, want ErrKeyNameTaken", err)
	}
	if _, err := db.RevokeAPIKey(ctx, "tablet-1"); err != nil {
		t.Fatal(err)
	}
	_, err := db.CreateAPIKey(ctx, "tablet-1", []string{"presell"})
	if !errors.Is(err, ErrKeyNameTaken) || !strings.Contains(err.Error(), "revoked key's") || !strings.Contains(err.Error(), "tablet-1-2") {
		t.Fatalf("a revoked key's name again: %v, want it refused, saying why and offering another", err)
	}
	if _, err := db.CreateAPIKey(ctx, "tablet-1-2", []string{"presell"}); err != nil {
		t.Fatalf("the name offered: %v", err)
	}
}
