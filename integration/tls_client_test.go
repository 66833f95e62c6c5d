package integration

// greenlane client and replay against a --tls lane: --ca (or GREENLANE_CA)
// trusts the lane's own CA; without it the refusal says to pass it. serve
// warns about advertised addresses its certificate does not name, and
// tls renew --names fixes that under the same CA.

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runGreenlane runs the binary with env added to an environment cleared
// of whatever would make Go trust the lane's CA on its own.
func runGreenlane(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	var base []string
	for _, kv := range quietEnv() {
		if !strings.HasPrefix(kv, "SSL_CERT_FILE=") && !strings.HasPrefix(kv, "SSL_CERT_DIR=") && !strings.HasPrefix(kv, "GREENLANE_") {
			base = append(base, kv)
		}
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(base, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestTLSClientCA(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	if _, err := cli(t, "tls", "init", "--db", db, "--names", "127.0.0.1,localhost"); err != nil {
		t.Fatal(err)
	}
	l := startLaneAt(t, db, "--tls")
	url := "wss://" + l.addr + "/fd1/open_websocket"
	ca := db + ".ca.pem"
	ping := []string{"client", "--url", url, "--key", l.key, "fd1.debug.ping"}
	replay := []string{"replay", "--url", "wss://" + l.addr, "--key", l.key, "--timeout", "10s", filepath.Join("testdata", "catalog.jsonl")}
	tests := []struct {
		name string
		env  []string
		args []string
		want string // in the output
		ok   bool
		code int // exit status when not ok
	}{
		{"client without --ca is told to pass it", nil, ping, "pass --ca <db>.ca.pem", false, 1},
		{"client --ca", nil, append([]string{"client", "--ca", ca}, ping[1:]...), `"r":"fd1.debug.ping"`, true, 0},
		{"client GREENLANE_CA", []string{"GREENLANE_CA=" + ca}, ping, `"r":"fd1.debug.ping"`, true, 0},
		{"client --ca of a missing file", nil, append([]string{"client", "--ca", db + ".nope.pem"}, ping[1:]...), "--ca", false, 2},
		{"client --ca of a file with no certificate", nil, append([]string{"client", "--ca", db}, ping[1:]...), "no PEM certificate", false, 2},
		{"replay without --ca is told to pass it", nil, replay, "pass --ca <db>.ca.pem", false, 1},
		{"replay --ca", nil, append([]string{"replay", "--ca", ca}, replay[1:]...), "ok   catalog.jsonl", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runGreenlane(t, tt.env, tt.args...)
			if (err == nil) != tt.ok || !strings.Contains(out, tt.want) {
				t.Fatalf("greenlane %q: %v\n%s\nwant ok %v and %q", tt.args, err, out, tt.ok, tt.want)
			}
			if !tt.ok {
				if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != tt.code {
					t.Fatalf("exit %v, want status %d\n%s", err, tt.code, out)
				}
			}
			if strings.Contains(out, "is 'greenlane serve' running?") {
				t.Fatalf("the lane answered, yet the client asks whether it runs:\n%s", out)
			}
		})
	}
}

// TestTLSUncoveredAddress: a certificate made for other names than the
// lane is reached under gets a warning at start that names the address and
// the tls renew that covers it; after that renew a client reaches the lane
// under that address with the same CA.
func TestTLSUncoveredAddress(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	db := filepath.Join(t.TempDir(), "lane.db")
	if _, err := cli(t, "tls", "init", "--db", db, "--names", "lane-1.test"); err != nil {
		t.Fatal(err)
	}
	ca0, _ := os.ReadFile(db + ".ca.pem")
	l := startLaneAt(t, db, "--tls")
	fix := "greenlane tls renew --db " + db + " --names lane-1.test,127.0.0.1"
	var warns []string
	for _, line := range strings.Split(l.troubles(), "\n") {
		if strings.Contains(line, "does not name addresses") {
			warns = append(warns, line)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "not_covered=127.0.0.1") || !strings.Contains(warns[0], fix) {
		t.Fatalf("want one warning naming 127.0.0.1 and %q, got:\n%s", fix, l.log())
	}
	ping := []string{"client", "--ca", db + ".ca.pem", "--url", "wss://" + l.addr + "/fd1/open_websocket", "--key", l.key, "fd1.debug.ping"}
	if out, err := runGreenlane(t, nil, ping...); err == nil || !strings.Contains(out, "does not name this host") {
		t.Fatalf("client to an address the certificate lacks: %v\n%s", err, out)
	}
	if out, err := cli(t, "tls", "renew", "--db", db, "--names", "lane-1.test,127.0.0.1"); err != nil || !strings.Contains(out, "renewed for lane-1.test, 127.0.0.1") {
		t.Fatalf("tls renew --names: %v\n%s", err, out)
	}
	if ca1, _ := os.ReadFile(db + ".ca.pem"); string(ca1) != string(ca0) {
		t.Fatal("tls renew --names replaced the CA")
	}
	if out, err := runGreenlane(t, nil, ping...); err != nil || !strings.Contains(out, `"r":"fd1.debug.ping"`) {
		t.Fatalf("client after tls renew --names: %v\n%s", err, out)
	}
}

// TestListeningEveryInterface: a lane bound to every interface gives URLs
// this machine can open in its listening line (127.0.0.1, not [::]), and
// keeps the bound address in addr=.
func TestListeningEveryInterface(t *testing.T) {
	alongside(t)
	needsOwnLane(t)
	l := startLaneAt(t, filepath.Join(t.TempDir(), "lane.db"), "--addr", "0.0.0.0:0")
	_, port, err := net.SplitHostPort(l.addr)
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, ln := range strings.Split(l.log(), "\n") {
		if listeningAddr(ln) != "" {
			line = ln
		}
	}
	if ip := net.ParseIP(strings.Trim(strings.TrimSuffix(l.addr, ":"+port), "[]")); ip == nil || !ip.IsUnspecified() {
		t.Fatalf("addr= is %q, want the bound every-interface address", l.addr)
	}
	local := "127.0.0.1:" + port
	for _, want := range []string{"websocket=ws://" + local + "/fd1/open_websocket", "screens=http://" + local + "/"} {
		if !strings.Contains(line, want) {
			t.Errorf("listening line lacks %s:\n%s", want, line)
		}
	}
	resp, err := http.Get("http://" + local + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the screens URL: %s", resp.Status)
	}
}
