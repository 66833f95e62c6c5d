package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlainProgressShowsTenthsAndTheEnd(t *testing.T) {
	var out bytes.Buffer
	p := New(&out, "sales", 1000)
	for i := int64(1); i <= 1000; i++ {
		p.Update(i)
	}
	p.Finish(1000)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 10 || !strings.HasPrefix(lines[0], "100 / 1,000 sales (10.0%)") || !strings.HasPrefix(lines[9], "1,000 sales in") {
		t.Fatalf("progress lines:\n%s", out.String())
	}
	if strings.Contains(out.String(), "\r") {
		t.Fatal("carriage returns in plain output")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567", 1000000: "1,000,000"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
