// Package setting checks configuration values. Every config struct of the
// lane has a Validate method built from these checks; each error names the
// field it is about, so that a command line can name its flag instead
// (cmd/greenlane maps fields to flags). It imports no package of ours, so
// every layer, lanedb and protocol included, may use it.
package setting

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
)

// Error is one bad value: Field is the field's path from the validated
// struct (Server.PongWait), Msg says what is wrong and what was given.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

// Errorf returns an *Error for field.
func Errorf(field, format string, args ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Range checks min <= v <= max. A time.Duration prints as one ("1s").
func Range[T cmp.Ordered](field string, v, min, max T) error {
	switch {
	case v < min:
		return Errorf(field, "must be at least %v, got %v", min, v)
	case v > max:
		return Errorf(field, "must be at most %v, got %v", max, v)
	}
	return nil
}

// OneOf checks that v is one of allowed, ignoring case.
func OneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return nil
		}
	}
	return Errorf(field, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
}

// Within prefixes the field of every *Error in err with part and a dot
// (lane.Config puts "Server." before server.Config's fields). Other errors
// are returned as they are.
func Within(part string, err error) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range Flatten(err) {
		var se *Error
		if errors.As(e, &se) {
			e = &Error{Field: part + "." + se.Field, Msg: se.Msg}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// Flatten lists the errors that errors.Join combined (err itself when it
// is a single error).
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}
