package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/go-playground/validator/v10"
)

var (
	validateOnce sync.Once
	validate     *validator.Validate
)

// validatorInstance is shared: validator caches struct metadata, so one
// instance for the process is both correct and fast.
func validatorInstance() *validator.Validate {
	validateOnce.Do(func() {
		validate = validator.New(validator.WithRequiredStructEnabled())
		// Report fields by their JSON name, which is what the client sent.
		validate.RegisterTagNameFunc(func(f reflect.StructField) string {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				return ""
			}
			if name == "" {
				return f.Name
			}
			return name
		})
		// printable: text a person reads later (a void's reason, shown to
		// counters and kept in the journal) holds no control or
		// direction characters, which could hide or reorder what is shown.
		if err := validate.RegisterValidation("printable", func(fl validator.FieldLevel) bool {
			return printable(fl.Field().String())
		}); err != nil {
			panic(err) // a tag name the validator refuses is a bug here
		}
	})
	return validate
}

// printable reports whether every rune of s is a letter, mark, number,
// punctuation, symbol or space (unicode.IsPrint).
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// DecodeV reads a request's v into dst (a pointer to a struct with json and
// validate tags) and validates it. Unknown fields are ignored (clients send
// extras such as tz and geo); wrong types and failed rules are bad_argument
// errors that name the field, e.g. `v.qty: must be at least 1`.
//
// Integer fields also take a string holding a plain decimal integer
// ("ticket":"17"), as FD1 clients and HTTP GET send numbers as text; money
// fields do the same through Money. Any other string is refused.
func DecodeV(v json.RawMessage, dst any) error {
	return decodeV(v, dst, "")
}

// DecodeStrictV is DecodeV for an endpoint that changes money or
// quantities (Endpoint.StrictV): a member of v that names no field of dst
// is refused, naming the fields the endpoint takes, rather than ignored.
// Ignored, a misspelling ("qyt":3) would ring up the default instead.
// endpoint names the endpoint in the message.
func DecodeStrictV(v json.RawMessage, dst any, endpoint string) error {
	return decodeV(v, dst, endpoint)
}

func decodeV(v json.RawMessage, dst any, strict string) error {
	if len(v) > 0 && strict != "" {
		if err := exactMembers(v, reflect.TypeOf(dst), strict); err != nil {
			return err
		}
	}
	if len(v) > 0 && !decodedAsSent(v, dst) {
		if err := decodeLongRoad(v, dst); err != nil {
			return err
		}
	}
	return Validate("v", dst)
}

// decodeLongRoad decodes v into dst whatever the client sent: numbers as
// text are turned into numbers first.
func decodeLongRoad(v json.RawMessage, dst any) error {
	var err error
	if v, err = numbersFromText(v, reflect.TypeOf(dst), "v"); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	if err := dec.Decode(dst); err != nil {
		return argError("v", err)
	}
	return nil
}

// exactMembers refuses, for an endpoint that changes money or quantities,
// a member of v named twice, or named other than exactly as a field of
// dst. encoding/json matches names in any case and keeps the last of a
// name given twice, so {"amount":1,"AMOUNT":10} paid 10 while anything
// reading the packet as written (a till's log, a proxy, an audit) saw 1.
// One request must mean one thing. A v that is no object is left to the
// decoder.
func exactMembers(v json.RawMessage, t reflect.Type, endpoint string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	names, ok := memberNames(v)
	if !ok {
		return nil
	}
	fields := jsonFieldTypes(t)
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if seen[name] {
			return Errorf(CodeBadArgument, "v.%s: given twice to %s; give it once", clipClientText(name), endpoint)
		}
		seen[name] = true
		if _, ok := fields[name]; !ok {
			return unknownFieldError(name, fields, endpoint)
		}
	}
	return nil
}

// memberNames lists the names of v's members in order, as written; ok is
// false when v is not a JSON object.
func memberNames(v json.RawMessage) (names []string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(v))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name, _ := tok.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, false
		}
		names = append(names, name)
	}
	return names, true
}

// decodedAsSent decodes v into dst in one pass, for the usual request:
// every number sent as a number. It reports false, with dst zeroed again,
// for anything else: a number sent as text, a wrong type, malformed JSON.
// decodeV then takes decodeLongRoad, which accepts the same requests with
// the same result and says what is wrong with the rest. (That road reads
// v twice more, and nearly every request is of the usual kind.)
func decodedAsSent(v json.RawMessage, dst any) bool {
	if json.NewDecoder(bytes.NewReader(v)).Decode(dst) == nil {
		return true
	}
	reflect.ValueOf(dst).Elem().SetZero()
	return false
}

// Validate runs validator/v10 on dst and turns the first failure into a
// bad_argument error whose message starts with prefix and the field path.
func Validate(prefix string, dst any) error {
	err := validatorInstance().Struct(dst)
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) || len(verrs) == 0 {
		return fmt.Errorf("validate %s: %w", prefix, err)
	}
	fe := verrs[0]
	// Namespace is "Struct.field.sub"; drop the Go struct name.
	path := fe.Namespace()
	if _, rest, ok := strings.Cut(path, "."); ok {
		path = rest
	}
	parent := strings.TrimSuffix(prefix+"."+path, "."+fe.Field())
	return Errorf(CodeBadArgument, "%s.%s: %s", prefix, path, ruleText(fe, siblingNames(dst, fe, parent)))
}

// siblingNames maps the Go names of the fields beside the failing one to
// what the client calls them (v.plu), for rules that name other fields.
func siblingNames(dst any, fe validator.FieldError, parent string) map[string]string {
	t := reflect.TypeOf(dst)
	// Walk StructNamespace ("Args.Outer.Field") down to the failing field's struct.
	parts := strings.Split(fe.StructNamespace(), ".")
	for _, name := range parts[1 : len(parts)-1] {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		f, ok := t.FieldByName(name)
		if !ok {
			return nil
		}
		t = f.Type
	}
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	names := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		j, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if j == "" || j == "-" {
			j = f.Name
		}
		names[f.Name] = parent + "." + j
	}
	return names
}

// ruleText says in words what a validation tag demanded. names maps Go
// field names in the rule's parameter to the client's names.
func ruleText(fe validator.FieldError, names map[string]string) string {
	fields := func() string {
		parts := strings.Fields(fe.Param())
		for i, p := range parts {
			if n, ok := names[p]; ok {
				parts[i] = n
			}
		}
		return strings.Join(parts, " or ")
	}
	switch fe.Tag() {
	case "required":
		return "is required"
	case "required_without":
		return "is required when " + fields() + " is not given"
	case "required_without_all":
		return "is required when none of " + strings.ReplaceAll(fields(), " or ", ", ") + " is given"
	case "excluded_with":
		return "cannot be given together with " + fields()
	case "min":
		if unit := lengthUnit(fe.Kind()); unit != "" {
			return "must have at least " + fe.Param() + " " + unit
		}
		return "must be at least " + bound(fe)
	case "max":
		if unit := lengthUnit(fe.Kind()); unit != "" {
			return "must have at most " + fe.Param() + " " + unit
		}
		return "must be at most " + bound(fe)
	case "gt":
		return "must be greater than " + bound(fe)
	case "gte":
		return "must be at least " + bound(fe)
	case "lte":
		return "must be at most " + bound(fe)
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "uuid", "uuid4", "uuid7":
		return "must be a UUID"
	case "printable":
		return "must be plain text: no control characters (newlines, tabs, escapes) and no direction marks"
	}
	return fmt.Sprintf("fails rule %q", fe.Tag())
}

// lengthUnit is what min and max count in a value of kind k: a string's
// characters, a list's items; "" for a number (they bound its value).
func lengthUnit(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "characters"
	case reflect.Slice, reflect.Array, reflect.Map:
		return "items"
	}
	return ""
}

// bound is a rule's limit as the client writes the field: a Money field's
// rules hold cents, the Go value, but the client sends currency units
// (lte=10000000000 on an amount reads "at most 100000000").
func bound(fe validator.FieldError) string {
	t := fe.Type()
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Money]() {
		if cents, err := strconv.ParseInt(fe.Param(), 10, 64); err == nil {
			return Money(cents).String()
		}
	}
	return fe.Param()
}

// argError turns an encoding/json error on part (v, q, …) into bad_argument.
func argError(part string, err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := part
		if typ.Field != "" {
			field += "." + typ.Field
		}
		want := goKindName(typ.Type.Kind().String())
		if typ.Type == reflect.TypeFor[Money]() {
			want = "an amount with at most two decimals"
		}
		return Errorf(CodeBadArgument, "%s: want %s, got %s", field, want, clipClientText(typ.Value))
	}
	return Errorf(CodeBadArgument, "%s: %s", part, jsonErrorText(err))
}

// goKindName says a Go kind the way a JSON client thinks of it.
func goKindName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "map", kind == "struct":
		return "an object"
	}
	return kind
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// numbersFromText rewrites raw, to be decoded into a value of type t, so
// that a JSON string standing where t has an integer holds that integer as
// a JSON number: {"ticket":"17"} becomes {"ticket":17}. It follows t into
// nested objects and arrays. A string that is not a plain decimal integer
// is a bad_argument naming the field (path, as encoding/json names fields);
// values of other types are left for the decoder to judge. Types with their
// own UnmarshalJSON (Money) read text themselves, except lists of integers
// (one pid or several), whose elements are rewritten here.
func numbersFromText(raw json.RawMessage, t reflect.Type, path string) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return raw, nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if t.Kind() != reflect.Slice || !isIntKind(t.Elem()) {
			return raw, nil
		}
		if raw[0] == '"' { // one integer where a list may stand
			return integerFromText(raw, path)
		}
	}
	switch {
	case isIntKind(t) && raw[0] == '"':
		return integerFromText(raw, path)
	case t.Kind() == reflect.Struct && raw[0] == '{':
		return objectNumbersFromText(raw, t, path)
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && raw[0] == '[':
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return raw, nil // malformed: the decoder reports it
		}
		changed := false
		for i, e := range elems {
			out, err := numbersFromText(e, t.Elem(), path)
			if err != nil {
				return nil, err
			}
			changed = changed || !bytes.Equal(out, bytes.TrimSpace(e))
			elems[i] = out
		}
		if !changed {
			return raw, nil
		}
		return json.Marshal(elems)
	}
	return raw, nil
}

// objectNumbersFromText applies numbersFromText to each member of a JSON
// object that names a field of struct type t, matching names the way
// encoding/json does (exact first, then any case).
func objectNumbersFromText(raw json.RawMessage, t reflect.Type, path string) (json.RawMessage, error) {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return raw, nil // malformed: the decoder reports it
	}
	fields := jsonFieldTypes(t)
	changed := false
	for name, val := range members {
		ft, ok := fields[name]
		if !ok {
			for fname, typ := range fields {
				if strings.EqualFold(fname, name) {
					ft, ok = typ, true
					break
				}
			}
		}
		if !ok {
			continue
		}
		out, err := numbersFromText(val, ft, path+"."+name)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(out, bytes.TrimSpace(val)) {
			members[name], changed = out, true
		}
	}
	if !changed {
		return raw, nil
	}
	return json.Marshal(members)
}

// jsonFieldTypes maps the JSON names of t's fields to their types,
// including the fields of embedded structs, as encoding/json sees them.
// Worked out once per type: every strict request asks (exactMembers), and
// the walk over reflect costs more than decoding a small v. The map is
// shared: callers only read it.
func jsonFieldTypes(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldTypes.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m, _ := fieldTypes.LoadOrStore(t, walkFieldTypes(t))
	return m.(map[string]reflect.Type)
}

// fieldTypes caches jsonFieldTypes by type (a program has few arg types).
var fieldTypes sync.Map

func walkFieldTypes(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			for n, typ := range jsonFieldTypes(ft) {
				if _, shadowed := out[n]; !shadowed {
					out[n] = typ
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func isIntKind(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// integerFromText turns a JSON string holding a plain decimal integer into
// that JSON number ("007" → 7, "-3" → -3); the decoder then checks its range.
func integerFromText(raw json.RawMessage, path string) (json.RawMessage, error) {
	var s string
	if json.Unmarshal(raw, &s) != nil || !isPlainInteger(s) {
		return nil, Errorf(CodeBadArgument, "%s: want an integer, got %s", path, describeJSON(raw))
	}
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimLeft(strings.TrimPrefix(s, "-"), "0")
	switch {
	case digits == "":
		return json.RawMessage("0"), nil
	case neg:
		return json.RawMessage("-" + digits), nil
	}
	return json.RawMessage(digits), nil
}

// unknownFieldError refuses v member name, which names none of fields,
// saying which names the endpoint takes.
func unknownFieldError(name string, fields map[string]reflect.Type, endpoint string) error {
	if len(fields) == 0 {
		return Errorf(CodeBadArgument, "v.%s: %s takes no v fields; leave v out", clipClientText(name), endpoint)
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	return Errorf(CodeBadArgument, "v.%s: %s takes no such field; its v fields are %s (names are exact, in lower case)",
		clipClientText(name), endpoint, strings.Join(names, ", "))
}

// NoArgs is the v of an endpoint that takes no fields: a strict endpoint's
// handler decodes it (ArgsOf[NoArgs]) so that a field sent anyway is
// refused rather than ignored.
type NoArgs struct{}

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }
