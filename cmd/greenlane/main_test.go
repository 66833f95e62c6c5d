package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	tests := map[string]string{
		"addr":            "GREENLANE_ADDR",
		"db-busy-timeout": "GREENLANE_DB_BUSY_TIMEOUT",
		"allow-origin":    "GREENLANE_ALLOW_ORIGIN",
	}
	for flagName, want := range tests {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestParseFlagsEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantDur time.Duration
		wantErr bool
	}{
		{name: "default", want: "127.0.0.1:3490", wantDur: time.Second},
		{name: "env fills", env: map[string]string{"GREENLANE_ADDR": ":9", "GREENLANE_PONG_WAIT": "5s"}, want: ":9", wantDur: 5 * time.Second},
		{name: "flag beats env", args: []string{"--addr", ":7"}, env: map[string]string{"GREENLANE_ADDR": ":9"}, want: ":7", wantDur: time.Second},
		{name: "bad env value", env: map[string]string{"GREENLANE_PONG_WAIT": "soon"}, wantErr: true},
		{name: "bad flag", args: []string{"--nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := newFlags("test", "test", io.Discard)
			addr := fs.String("addr", "127.0.0.1:3490", "")
			pong := fs.Duration("pong-wait", time.Second, "")
			err := parseFlags(fs, tt.args)
			if tt.wantErr {
				var ue usageError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil || *addr != tt.want || *pong != tt.wantDur {
				t.Fatalf("addr=%q pong=%v err=%v", *addr, *pong, err)
			}
		})
	}
}

func TestDispatchUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	err := dispatch([]string{"explode"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "serve") {
		t.Fatalf("unknown command: %v", err)
	}
	if err := dispatch([]string{"serve", "--help"}, &out, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve --help: %v", err)
	}
	if !strings.Contains(out.String(), "GREENLANE_ADDR") {
		t.Errorf("serve --help does not name the environment variables:\n%s", out.String())
	}
}
