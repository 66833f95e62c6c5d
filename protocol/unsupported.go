package protocol

import (
	"context"
	"strings"
)

// notOffered is one documented FD1 endpoint this lane does not serve. A
// client calling it gets unsupported, not unknown_endpoint: the name is
// right, the lane lacks the feature, and a typo must stay tellable apart
// from that. Where the lane offers another way, Instead says which.
type notOffered struct {
	Names []string // canonical name first, then aliases (fd1. optional)
	// Family, instead of Names, is a whole documented family by its
	// prefix ("fd1.devices."): any function name under it, matched after
	// every exact name, so that the README can name the family and each
	// of its endpoints answers alike.
	Family  string
	Access  Access // checked first, as for a served endpoint
	Instead string // what this lane offers instead, or ""
}

// counterOnly is who may learn that a documented endpoint is missing: the
// access rule runs before the answer, so a tablet or display key is told
// no more about these names than about a name the lane has never heard of
// (forbidden, as for any endpoint outside its scopes).
var counterOnly = Access{Scopes: []Scope{ScopeCounter}}

// NotOffered is the one table of documented endpoints (SPEC [DOC]) that
// this lane answers with unsupported. A package that comes to serve one
// registers it with Router.Handle, which takes precedence.
var NotOffered = []notOffered{
	{Names: []string{"fd1.salesbuilder.sale_invoke_eftpos"}, Access: counterOnly,
		Instead: "this lane has no integrated card terminal: take the card on the terminal, then record it with fd1.salesbuilder.sale_add_payment v:{\"type\":3,\"amount\":…} (global payment code 3, eftpos)"},
	{Names: []string{"fd1.sales.sale_request"}, Access: counterOnly,
		Instead: "this lane offers no whole-sale actions (sendorderdispatched): it keeps no shipped orders, and nothing replaces it here"},
	{Names: []string{"fd1.sales.sale_save_new", "fd1.sales.save_new_sale"}, Access: counterOnly,
		Instead: "build the sale with fd1.salesbuilder.sale_create, sale_add_product, sale_add_payment and salesbuilder_complete"},
	{Names: []string{"fd1.sales.create_sale", "fd1.sales.create"}, Access: counterOnly,
		Instead: "build the sale with fd1.salesbuilder.sale_create, sale_add_product, sale_add_payment and salesbuilder_complete"},
	{Names: []string{"fd1.sales.get_single_sale"}, Access: counterOnly,
		Instead: "an active or parked sale is read with fd1.salesbuilder.sale_fetch (k = physkey); completed sales are not served"},
	{Names: []string{"fd1.sales.edit_sale"}, Access: counterOnly,
		Instead: "an active sale is changed with the fd1.salesbuilder.sale_* endpoints; completed sales cannot be edited here"},
	{Names: []string{"fd1.sales.get_receipt"}, Access: counterOnly,
		Instead: "the counter prints the receipt from its own POS once it completes the sale (fd1.salesbuilder.salesbuilder_complete)"},
	{Names: []string{"fd1.products.edit_products"}, Access: counterOnly,
		Instead: "products are read with fd1.products.get_products_list; they are edited in the POS database"},
	{Names: []string{"fd1.products.get_product_attribute"}, Access: counterOnly,
		Instead: "read the product with fd1.products.get_products_list, k its pid or physkey and qo the fields wanted (e.g. qo:{\"barcodes\":true})"},
	{Names: []string{"fd1.customers.edit_customers"}, Access: counterOnly,
		Instead: "customers are read with fd1.customers.get_customers; they are edited in the POS database"},
	{Names: []string{"fd1.devices.get_eftpos_devices", "fd1.devices.request_eftpos_payment", "fd1.devices.update_eftpos_request",
		"fd1.devices.eftpos_status_update", "fd1.devices.eftpos_payment_complete"}, Access: counterOnly,
		Instead: "this lane has no integrated card terminal: take the card on the terminal, then record it with fd1.salesbuilder.sale_add_payment v:{\"type\":3,\"amount\":…} (global payment code 3, eftpos)"},
	{Names: []string{"fd1.devices.get_scale_devices", "fd1.devices.pair_to_scale", "fd1.devices.enable_scale_reading",
		"fd1.devices.scale_read_ready"}, Access: counterOnly,
		Instead: "weighed goods are added with fd1.salesbuilder.sale_add_product and qty in grams"},
	{Names: []string{"fd1.data"}, Access: counterOnly,
		Instead: "products are read with fd1.products.get_products_list, customers with fd1.customers.get_customers"},
	// The families the README names as not offered, for their endpoints
	// not listed above.
	{Family: "fd1.devices.", Access: counterOnly,
		Instead: "this lane drives no devices: take a card on the terminal and record it with fd1.salesbuilder.sale_add_payment v:{\"type\":3,\"amount\":…}, add weighed goods with fd1.salesbuilder.sale_add_product and qty in grams"},
	{Family: "fd1.sales.", Access: counterOnly,
		Instead: "build and read sales with the fd1.salesbuilder.* endpoints (an active or parked sale with sale_fetch); completed sales are not served"},
	{Family: "fd1.data.", Access: counterOnly,
		Instead: "products are read with fd1.products.get_products_list, customers with fd1.customers.get_customers"},
}

// familyFunction reports whether a is a function name in family: the
// family's prefix, then one name of lower-case letters, digits and
// underscores, as every documented endpoint is spelt. Anything else (a
// trailing dot, a space, a look-alike letter) stays unknown_endpoint.
func familyFunction(family, a string) bool {
	fn, ok := strings.CutPrefix(a, family)
	if !ok || fn == "" {
		return false
	}
	for _, c := range fn {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// notOfferedEndpoint is the endpoint Lookup answers a NotOffered name with:
// its access rule, then unsupported naming the endpoint the client called
// (one entry holds several names: each is told about its own).
func notOfferedEndpoint(n notOffered) *Endpoint {
	var name string
	var aliases []string
	if n.Family != "" {
		name = n.Family + "*"
	} else {
		name, aliases = Normalize(n.Names[0]), n.Names[1:]
	}
	return &Endpoint{Name: name, Aliases: aliases, Access: n.Access,
		Handler: func(_ context.Context, call *Call) (*Result, error) {
			called := name
			if call != nil && call.Req != nil && call.Req.A != "" {
				called = Normalize(call.Req.A)
			}
			msg := called + " is not offered by this lane"
			if n.Instead != "" {
				msg += "; " + n.Instead
			}
			return nil, &Error{Code: CodeUnsupported, Message: msg}
		}}
}
