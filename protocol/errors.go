package protocol

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is an FD1 error code. Every error a client can see has one of the codes
// below; packages map their own errors onto these at their edge.
type Code string

// The one list of error codes. Each has an HTTP status for HTTP mode.
const (
	CodeBadPacket       Code = "bad_packet"       // frame is not a usable FD1 packet
	CodeBadArgument     Code = "bad_argument"     // a field of k, v, qk, qo or rq is missing or wrong
	CodeBadFilter       Code = "bad_filter"       // a q filter is malformed or names an unknown field/operator
	CodeUnknownEndpoint Code = "unknown_endpoint" // no endpoint with that name
	CodeLoginRequired   Code = "login_required"   // the socket has not logged in
	CodeLoginFailed     Code = "login_failed"     // the API key is unknown or revoked
	CodeForbidden       Code = "forbidden"        // logged in, but the scopes or purpose do not allow this
	CodeNotFound        Code = "not_found"        // the record named by k does not exist
	CodeConflict        Code = "conflict"         // the record is not in a state that allows this
	CodeUnknownProduct  Code = "unknown_product"  // no product with that pid, PLU or barcode, or not for sale
	CodeUnderpaid       Code = "underpaid"        // payments do not cover the sale total
	CodeHasPayments     Code = "has_payments"     // the sale holds payments: reverse them first
	CodeLimitReached    Code = "limit_reached"    // a per-sale, per-key or per-lane cap is full; free something first
	CodeClaimed         Code = "claimed"          // another device holds the sale
	CodeClaimLost       Code = "claim_lost"       // this device's claim lapsed or was taken over; recall again
	CodeIKReused        Code = "ik_reused"        // the idempotency key was used for a different request
	CodeUnsupported     Code = "unsupported"      // a documented feature this lane does not offer
	CodeRateLimited     Code = "rate_limited"     // too many requests or logins; slow down
	CodeUnavailable     Code = "unavailable"      // the lane is shutting down or overloaded; retry
	CodeCancelled       Code = "cancelled"        // the request was cancelled by fd1.session.cancel_request
	CodeInternal        Code = "internal"         // a fault on the lane; details are in its log
)

var httpStatus = map[Code]int{
	CodeBadPacket:       http.StatusBadRequest,
	CodeBadArgument:     http.StatusBadRequest,
	CodeBadFilter:       http.StatusBadRequest,
	CodeUnknownEndpoint: http.StatusNotFound,
	CodeLoginRequired:   http.StatusUnauthorized,
	CodeLoginFailed:     http.StatusUnauthorized,
	CodeForbidden:       http.StatusForbidden,
	CodeNotFound:        http.StatusNotFound,
	CodeConflict:        http.StatusConflict,
	CodeUnknownProduct:  http.StatusNotFound,
	CodeUnderpaid:       http.StatusConflict,
	CodeHasPayments:     http.StatusConflict,
	CodeLimitReached:    http.StatusConflict,
	CodeClaimed:         http.StatusConflict,
	CodeClaimLost:       http.StatusConflict,
	CodeIKReused:        http.StatusUnprocessableEntity,
	CodeUnsupported:     http.StatusNotImplemented,
	CodeRateLimited:     http.StatusTooManyRequests,
	CodeUnavailable:     http.StatusServiceUnavailable,
	CodeCancelled:       499, // client closed request, as nginx and others use it
	CodeInternal:        http.StatusInternalServerError,
}

// HTTPStatus is the status HTTP mode sends with an error of this code.
func (c Code) HTTPStatus() int {
	if s, ok := httpStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is an error a client may see: a code and a message written for the
// person reading the client's log.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Cause, on an unavailable only, names why the lane cannot take the
	// change when that is more than being busy or shutting down: something
	// a person at the lane must see to, or must know before retrying (one
	// of the Cause constants). Its message then says what, in words fit to
	// show: a page shows it instead of its own "busy" line. "" (left out
	// of the JSON): busy, shutting down, or slow; retry.
	Cause Cause `json:"cause,omitempty"`
}

// Cause is why a change is unavailable (Error.Cause).
type Cause string

// The one list of causes.
const (
	CauseClock          Cause = "clock"           // the lane's clock is off the store database's: set it right
	CauseStorage        Cause = "storage"         // the lane's disk refuses writes (full, failing, read-only)
	CauseDBLocked       Cause = "db_locked"       // another program or lane holds the lane DB's write lock
	CauseDBUnreachable  Cause = "db_unreachable"  // the store database cannot be reached
	CauseOutcomeUnknown Cause = "outcome_unknown" // the change may have been made: retry with the same ik
)

// Because returns e with cause set (see Error.Cause).
func (e *Error) Because(c Cause) *Error {
	e.Cause = c
	return e
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf makes an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns the client-facing form of err. An error that is not (and
// does not wrap) an *Error is internal: its text stays on the lane and the
// client gets a generic message.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "the lane could not complete this request; see the lane log"}
}
