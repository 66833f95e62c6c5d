package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

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
	})
	return validate
}

// DecodeV reads a request's v into dst (a pointer to a struct with json and
// validate tags) and validates it. Unknown fields are ignored (clients send
// extras such as tz and geo); wrong types and failed rules are bad_argument
// errors that name the field, e.g. `v.qty: must be at least 1`.
func DecodeV(v json.RawMessage, dst any) error {
	if len(v) > 0 {
		dec := json.NewDecoder(bytes.NewReader(v))
		if err := dec.Decode(dst); err != nil {
			return argError("v", err)
		}
	}
	return Validate("v", dst)
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
		if fe.Kind() == reflect.String || fe.Kind() == reflect.Slice {
			return "must have at least " + fe.Param() + " characters"
		}
		return "must be at least " + fe.Param()
	case "max":
		if fe.Kind() == reflect.String || fe.Kind() == reflect.Slice {
			return "must have at most " + fe.Param() + " characters"
		}
		return "must be at most " + fe.Param()
	case "gt":
		return "must be greater than " + fe.Param()
	case "gte":
		return "must be at least " + fe.Param()
	case "lte":
		return "must be at most " + fe.Param()
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "uuid", "uuid4", "uuid7":
		return "must be a UUID"
	}
	return fmt.Sprintf("fails rule %q", fe.Tag())
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

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }
