package lane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/greenlane-pos/greenlane/internal/setting"
	"github.com/greenlane-pos/greenlane/lanedb"
)

// TestNewValidatesEveryPart: New refuses a bad value in any part of the
// config, before anything starts, with the field's path in the error.
func TestNewValidatesEveryPart(t *testing.T) {
	tests := []struct {
		field string
		set   func(*Config)
	}{
		{"Server.PongWait", func(c *Config) { c.Server.PongWait = 0 }},
		{"Server.RevokeCheck", func(c *Config) { c.Server.RevokeCheck = 0 }},
		{"Server.MaxSockets", func(c *Config) { c.Server.MaxSockets = 0 }},
		{"Server.Addr", func(c *Config) { c.Server.Addr = "3490" }},
		{"Writer.MaxBatch", func(c *Config) { c.Writer.MaxBatch = -1 }},
		{"Sales.Lease", func(c *Config) { c.Sales.Lease = 100000 * time.Hour }},
		{"Catalog.MaxRows", func(c *Config) { c.Catalog.MaxRows = 0 }},
		{"Hub.MaxPerSocket", func(c *Config) { c.Hub.MaxPerSocket = 0 }},
		{"SweepEvery", func(c *Config) { c.SweepEvery = 0 }},
	}
	db, err := lanedb.Open(context.Background(), filepath.Join(t.TempDir(), "lane.db"), lanedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.set(&cfg)
			l, err := New(context.Background(), db, cfg, log)
			if err == nil {
				l.Close()
				t.Fatal("accepted")
			}
			var fields []string
			for _, e := range setting.Flatten(errors.Unwrap(err)) {
				var se *setting.Error
				if errors.As(e, &se) {
					fields = append(fields, se.Field)
				}
			}
			if len(fields) != 1 || fields[0] != tt.field {
				t.Fatalf("err %v names %v, want [%s]", err, fields, tt.field)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
}
