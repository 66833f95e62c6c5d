package protocol_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/greenlane-pos/greenlane/protocol"
)

func codeOf(t *testing.T, err error) protocol.Code {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want an FD1 error", err)
	}
	return pe.Code
}

// Documented endpoints the lane lacks answer unsupported, a typo
// unknown_endpoint; the access rule still comes first.
func TestNotOfferedEndpoints(t *testing.T) {
	r := protocol.NewRouter()
	till := protocol.Caller{KeyID: "c", KeyName: "counter-1", Scopes: []protocol.Scope{protocol.ScopeCounter}}
	tab := protocol.Caller{KeyID: "t", KeyName: "tablet-1", Scopes: []protocol.Scope{protocol.ScopePresell}, Purpose: protocol.PurposePresell}
	names := []string{
		"fd1.salesbuilder.sale_invoke_eftpos", "salesbuilder.sale_invoke_eftpos",
		"sales.sale_request", "sales.sale_save_new", "fd1.sales.create_sale", "fd1.sales.create",
		"fd1.sales.get_single_sale", "fd1.sales.edit_sale", "fd1.sales.save_new_sale", "fd1.sales.get_receipt",
		"fd1.products.edit_products", "fd1.customers.edit_customers", "fd1.products.get_product_attribute",
		"fd1.devices.get_eftpos_devices", "fd1.devices.request_eftpos_payment", "fd1.devices.update_eftpos_request",
		"fd1.devices.get_scale_devices", "fd1.devices.pair_to_scale", "fd1.devices.enable_scale_reading",
		"fd1.devices.eftpos_status_update", "fd1.devices.scale_read_ready", "devices.eftpos_payment_complete",
		"fd1.data", "data",
		// The families the README names answer for every function in them.
		"fd1.devices.get_devices", "devices.list_printers", "fd1.sales.get_sales", "sales.void_sale", "fd1.data.export",
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ep, err := r.Lookup(name)
			if err != nil {
				t.Fatalf("Lookup: %v, want the documented endpoint", err)
			}
			req := &protocol.Request{A: name}
			if _, err := ep.Admit(req, tab); codeOf(t, err) != protocol.CodeForbidden {
				t.Fatalf("a tablet key got %v, want forbidden (the access rule first)", err)
			}
			call, err := ep.Admit(req, till)
			if err != nil {
				t.Fatalf("Admit counter: %v", err)
			}
			_, err = ep.Handler(context.Background(), call)
			if codeOf(t, err) != protocol.CodeUnsupported {
				t.Fatalf("got %v, want unsupported", err)
			}
			// Every answer names the endpoint called and says what to do.
			msg := err.Error()
			if !strings.Contains(msg, protocol.Normalize(name)+" is not offered") || !strings.Contains(msg, "; ") {
				t.Fatalf("%s says %q, want its own name and an instead", name, msg)
			}
		})
	}
	for _, typo := range []string{"fd1.salesbuilder.sale_invoke_eftpso", "fd1.devices.", "fd1.devices", "fd1.devices.get devices",
		"fd1.devices.get_devices.", "fd1.devices.Get_devices", "fd1.devicesx.get_devices", "fd1.salesx.get_sales", "fd1.products.get_devices"} {
		if _, err := r.Lookup(typo); codeOf(t, err) != protocol.CodeUnknownEndpoint {
			t.Fatalf("%q got %v, want unknown_endpoint", typo, err)
		}
	}

	// What the lane offers instead of an integrated terminal.
	ep, _ := r.Lookup("fd1.salesbuilder.sale_invoke_eftpos")
	call, _ := ep.Admit(&protocol.Request{A: ep.Name}, till)
	_, err := ep.Handler(context.Background(), call)
	if msg := err.Error(); !strings.Contains(msg, "sale_add_payment") || !strings.Contains(msg, `"type":3`) {
		t.Fatalf("invoke_eftpos says %q, want the sale_add_payment type 3 way", msg)
	}

	// A package that comes to serve one registers it, and is served.
	served := &protocol.Endpoint{Name: "fd1.data", Access: protocol.Access{AnyKey: true}, Handler: rtrHandler}
	r.Handle(served)
	if got, err := r.Lookup("data"); err != nil || got != served {
		t.Fatalf("Lookup after Handle = %v, %v; want the registered endpoint", got, err)
	}
}

// q, qk and mo an endpoint would ignore are refused, not ignored.
func TestEndpointRefusesWhatItWouldIgnore(t *testing.T) {
	caller := protocol.Caller{KeyID: "a", Scopes: []protocol.Scope{protocol.ScopeAdmin}}
	plain := &protocol.Endpoint{Name: "fd1.x.plain", Access: protocol.Access{AnyKey: true}, Handler: rtrHandler}
	lists := &protocol.Endpoint{Name: "fd1.x.list", Access: protocol.Access{AnyKey: true}, Handler: rtrHandler,
		Filters: true, Keywords: []string{"all"}}
	q := map[string]json.RawMessage{"plu": json.RawMessage(`"FW"`)}
	tests := []struct {
		name string
		ep   *protocol.Endpoint
		req  protocol.Request
		want protocol.Code // "" = admitted
		msg  string
	}{
		{"nothing asked", plain, protocol.Request{}, "", ""},
		{"q to an endpoint that reads none", plain, protocol.Request{Q: q}, protocol.CodeBadFilter, `takes no q filters; got "plu"`},
		{"q to one that reads q", lists, protocol.Request{Q: q}, "", ""},
		{"known qk", lists, protocol.Request{QK: protocol.Keywords{"all"}}, "", ""},
		{"qk in capitals", lists, protocol.Request{QK: protocol.Keywords{"ALL"}}, protocol.CodeBadArgument, `takes "all"; got "ALL"`},
		{"qk to an endpoint that takes none", plain, protocol.Request{QK: protocol.Keywords{"all"}}, protocol.CodeBadArgument, "takes no keywords"},
		{"mo chunk", plain, protocol.Request{MO: protocol.Keywords{"chunk"}}, "", ""},
		{"mo in capitals", plain, protocol.Request{MO: protocol.Keywords{"CHUNK"}}, protocol.CodeBadArgument, `mode "chunk" only; got "CHUNK"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.A = tt.ep.Name
			_, err := tt.ep.Admit(&req, caller)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if codeOf(t, err) != tt.want || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want %s saying %q", err, tt.want, tt.msg)
			}
		})
	}
}
