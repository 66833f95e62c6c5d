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
