package transcript

import (
	"fmt"
	"strings"
)

// maxMismatches and maxPending keep a report readable when everything
// differs (a wrong fixture, a different server).
const (
	maxMismatches = 20
	maxPending    = 5
	maxPacketText = 2000
)

// Error is the failure as a report for people:
//
//	FAIL presell.jsonl:23: the reply to rq "c5" on socket "tablet" does not match
//	  data.rows[0].saletotal: expected 11, got 12.4
//	only numbers differ: the lane's data (a price, a discount) is most likely not the data the transcript was recorded with
//	in: # the tablet adds two flat whites
//	sent (line 21, socket "tablet"): {"a":"salesbuilder.sale_add_product","rq":"c5",…}
//	expected (line 23): {"r":"salesbuilder.sale_add_product","rp":"c5",…}
//	got: {"r":"salesbuilder.sale_add_product","rp":"c5",…}
func (f *Failure) Error() string {
	var b strings.Builder
	name := f.Name
	if name == "" {
		name = "transcript"
	}
	fmt.Fprintf(&b, "FAIL %s:%d: %s %s\n", name, f.Step.Line, f.What, f.Problem)
	for i, m := range f.Mismatches {
		if i == maxMismatches {
			fmt.Fprintf(&b, "  … and %d more differences\n", len(f.Mismatches)-i)
			break
		}
		fmt.Fprintf(&b, "  %s\n", m)
	}
	if allNumbers(f.Mismatches) {
		// Read bare, "expected 11, got 12.4" looks like the replay
		// misreading the lane; it is nearly always the lane's data.
		b.WriteString(dataDiffers + "\n")
	}
	if f.Section != "" {
		fmt.Fprintf(&b, "in: # %s\n", f.Section)
	}
	if f.Sent != nil {
		fmt.Fprintf(&b, "sent (line %d, socket %q): %s\n", f.SentLine, f.SentSocket, cut(f.Sent.String()))
	}
	if f.Step.Expect != nil {
		fmt.Fprintf(&b, "expected (line %d): %s\n", f.Step.Line, cut(f.Step.Expect.String()))
	}
	if f.Got != nil {
		fmt.Fprintf(&b, "got: %s\n", cut(f.Got.String()))
	}
	if f.Got == nil && f.Step.Expect != nil {
		f.writePending(&b)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// dataDiffers explains a failure whose every difference is a number.
const dataDiffers = "only numbers differ: the lane's data (a price, a discount) is most likely not the data the transcript was recorded with"

func allNumbers(ms []Mismatch) bool {
	for _, m := range ms {
		if !m.Numbers {
			return false
		}
	}
	return len(ms) > 0
}

func (f *Failure) writePending(b *strings.Builder) {
	if len(f.Pending) == 0 {
		b.WriteString("nothing else arrived on that socket\n")
		return
	}
	fmt.Fprintf(b, "arrived on that socket and not expected (%d):\n", len(f.Pending))
	for i, p := range f.Pending {
		if i == maxPending {
			fmt.Fprintf(b, "  … and %d more\n", len(f.Pending)-i)
			break
		}
		fmt.Fprintf(b, "  %s\n", show(p))
	}
}

func cut(s string) string {
	if len(s) > maxPacketText {
		return s[:maxPacketText-1] + "…"
	}
	return s
}
