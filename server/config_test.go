package server

import (
	"strings"
	"testing"
)

// TestConfigUnauthBelowSockets: the cap on sockets not logged in must stay
// below the socket cap, or strangers can take every place a device needs.
func TestConfigUnauthBelowSockets(t *testing.T) {
	tests := []struct {
		name            string
		sockets, unauth int
		wantErr         string // "" when valid
	}{
		{"defaults", 2000, 256, ""},
		{"one below", 10, 9, ""},
		{"equal", 10, 10, "MaxUnauthSockets: must be below the socket cap (10), got 10"},
		{"above", 10, 100, "MaxUnauthSockets: must be below the socket cap (10), got 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxSockets, cfg.MaxUnauthSockets = tt.sockets, tt.unauth
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
