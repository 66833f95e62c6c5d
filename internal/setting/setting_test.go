package setting

import (
	"errors"
	"testing"
	"time"
)

func TestRange(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // "" for no error
	}{
		{"duration in range", Range("PongWait", time.Second, time.Second, time.Hour), ""},
		{"duration too small", Range("PongWait", 0, time.Second, time.Hour), "PongWait: must be at least 1s, got 0s"},
		{"duration too big", Range("PongWait", 100000*time.Hour, time.Second, time.Hour), "PongWait: must be at most 1h0m0s, got 100000h0m0s"},
		{"int too small", Range("MaxSockets", -1, 1, 10), "MaxSockets: must be at least 1, got -1"},
		{"float too big", Range("RequestRate", 1e18, 0.01, 1e9), "RequestRate: must be at most 1e+09, got 1e+18"},
		{"one of, any case", OneOf("Synchronous", "full", "FULL", "OFF"), ""},
		{"not one of", OneOf("Synchronous", "0", "FULL", "OFF"), `Synchronous: must be one of FULL, OFF, got "0"`},
	}
	for _, tt := range tests {
		got := ""
		if tt.err != nil {
			got = tt.err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestWithin(t *testing.T) {
	plain := errors.New("plain")
	err := Within("Server", errors.Join(Range("PongWait", 0, time.Second, time.Hour), plain))
	var fields []string
	for _, e := range Flatten(err) {
		var se *Error
		if errors.As(e, &se) {
			fields = append(fields, se.Field)
		} else if e != plain {
			t.Errorf("a plain error changed: %v", e)
		}
	}
	if len(fields) != 1 || fields[0] != "Server.PongWait" {
		t.Fatalf("fields %v, want [Server.PongWait]", fields)
	}
	if Within("Server", nil) != nil {
		t.Fatal("no error became one")
	}
}
