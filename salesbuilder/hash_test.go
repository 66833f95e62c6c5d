package salesbuilder

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

// TestRequestHash: a request is identified by what it asks for, as its
// handler decodes it: members in another order, a number as text, a GET's
// empty q are the same request; another amount is not. The hash of v as
// written (what earlier lanes stored) tells the spellings apart.
func TestRequestHash(t *testing.T) {
	ep := &protocol.Endpoint{Name: "fd1.salesbuilder.sale_add_payment", StrictV: true}
	call := func(v string, q map[string]json.RawMessage) *protocol.Call {
		c := &protocol.Call{Req: &protocol.Request{A: ep.Name, K: json.RawMessage(`"k1"`), V: json.RawMessage(v), Q: q}, Endpoint: ep}
		if _, err := protocol.ArgsOf[paymentArgs](c); err != nil {
			t.Fatalf("decode %s: %v", v, err)
		}
		return c
	}
	first := call(`{"type":1,"amount":5}`, nil)
	tests := []struct {
		name          string
		retry         *protocol.Call
		same, written bool // requestHash equal; writtenHash equal
	}{
		{"as sent", call(`{"type":1,"amount":5}`, nil), true, true},
		{"spaced", call(`{ "type": 1, "amount": 5 }`, nil), true, true},
		{"members in another order", call(`{"amount":5,"type":1}`, nil), true, false},
		{"amount as text", call(`{"type":1,"amount":"5.00"}`, nil), true, false},
		{"a GET's empty q", call(`{"type":1,"amount":5}`, map[string]json.RawMessage{}), true, false},
		{"another amount", call(`{"type":1,"amount":6}`, nil), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bytes.Equal(requestHash(first), requestHash(tt.retry)); got != tt.same {
				t.Errorf("requestHash equal: %v, want %v", got, tt.same)
			}
			if got := bytes.Equal(writtenHash(first), writtenHash(tt.retry)); got != tt.written {
				t.Errorf("writtenHash equal: %v, want %v", got, tt.written)
			}
		})
	}
}
