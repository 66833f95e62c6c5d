package lanedb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// API keys look like "glk.<id>.<secret>": id finds the row, secret is
// checked against a salted SHA-256. The secret carries 192 random bits, so a
// fast hash is enough (there is nothing to brute-force), and a fast hash keeps
// login cheap under a flood of bad keys. Every character is in the FD1 API
// key alphabet (A–Z a–z 0–9 and -_.).
const keyPrefix = "glk"

var keyIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// APIKey is a stored key, without its secret.
type APIKey struct {
	KeyID      string         `db:"key_id"`
	Name       string         `db:"name"`
	Scopes     string         `db:"scopes"` // comma-separated
	CreatedUTC string         `db:"created_utc"`
	RevokedUTC sql.NullString `db:"revoked_utc"`
}

// ScopeList is Scopes split into names.
func (k *APIKey) ScopeList() []string { return strings.Split(k.Scopes, ",") }

// ErrBadKey is returned for a key that is malformed, unknown or wrong.
var ErrBadKey = errors.New("unknown API key")

// ErrRevokedKey is returned for a key that was revoked.
var ErrRevokedKey = errors.New("API key revoked")

// ErrKeyNameTaken is returned when a key, live or revoked, already has the
// name.
var ErrKeyNameTaken = errors.New("an API key already has that name")

// MaxKeyNameLen is the most characters a key name may have: it is shown in
// log lines, in apikey list's table, in the login reply and on the counter
// page beside each presell, where a long one would push the rest away.
const MaxKeyNameLen = 64

// ErrBadKeyName is CreateAPIKey's refusal of a name that could pass for
// something else where it is printed: a newline or escape sequence forges a
// log line or a table row, a bidirectional override (U+202E) turns the text
// after it around.
var ErrBadKeyName = fmt.Errorf("a key name must be 1 to %d printable characters (no control or format characters)", MaxKeyNameLen)

// CheckKeyName reports whether name (already trimmed) is a name
// CreateAPIKey accepts: valid UTF-8 of 1 to MaxKeyNameLen characters, each
// printable (letters, marks, numbers, punctuation, symbols and the ASCII
// space: no control, format (bidi, zero-width), separator or other space
// characters).
func CheckKeyName(name string) error {
	n := utf8.RuneCountInString(name)
	switch {
	case name == "":
		return ErrBadKeyName
	case !utf8.ValidString(name):
		return fmt.Errorf("%w; got invalid UTF-8", ErrBadKeyName)
	case n > MaxKeyNameLen:
		return fmt.Errorf("%w; got %d characters", ErrBadKeyName, n)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w; got %U in %s", ErrBadKeyName, r, strconv.QuoteToASCII(name))
		}
	}
	return nil
}

// CreateAPIKey stores a new key and returns it in full. This is the only
// time the full key exists outside its holder. The name must pass
// CheckKeyName once trimmed.
func (db *DB) CreateAPIKey(ctx context.Context, name string, scopes []string) (string, error) {
	name = strings.TrimSpace(name)
	if err := CheckKeyName(name); err != nil {
		return "", err
	}
	if len(scopes) == 0 {
		return "", fmt.Errorf("an API key needs at least one scope")
	}
	idBytes := make([]byte, 10)
	secret := make([]byte, 24)
	salt := make([]byte, 16)
	for _, b := range [][]byte{idBytes, secret, salt} {
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("random key: %w", err)
		}
	}
	id := strings.ToLower(keyIDEncoding.EncodeToString(idBytes))
	secretText := base64.RawURLEncoding.EncodeToString(secret)
	err := db.WriteTx(ctx, func(tx *Tx) error {
		// A name is never given twice, not even a revoked key's: the sales
		// a key made carry its name (created_by), and a new key of the same
		// name would take over some of them (those checked by name) and
		// not others (those checked by key id).
		var live []bool
		if err := tx.SelectContext(ctx, &live, `SELECT revoked_utc IS NULL FROM api_keys WHERE name = ?`, name); err != nil {
			return fmt.Errorf("check key name: %w", err)
		}
		switch {
		case slices.Contains(live, true):
			return fmt.Errorf("%w: %q", ErrKeyNameTaken, name)
		case len(live) > 0:
			return fmt.Errorf("%w: %q was a revoked key's, and the sales it made carry that name: give the new key another (%s-2)",
				ErrKeyNameTaken, name, name)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (key_id, name, scopes, salt, hash, created_utc)
			VALUES (?, ?, ?, ?, ?, ?)`,
			id, name, strings.Join(scopes, ","), salt, keyHash(salt, secretText), time.Now().UTC().Format(DateTime))
		if err != nil {
			return fmt.Errorf("store API key: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return keyPrefix + "." + id + "." + secretText, nil
}

// RedactKeys is s with the secret of anything shaped like an API key
// ("glk.<id>.<secret>", each part in the key alphabet) replaced by
// "[redacted]", for text that is logged: a key pasted into a URL path by
// mistake must not land in the log. The id stays, since apikey list shows
// it and it tells whose key leaked.
func RedactKeys(s string) string {
	const mark = keyPrefix + "."
	if !strings.Contains(s, mark) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, mark)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		id := i + len(mark)
		idEnd := id + keyRunLen(s[id:])
		if idEnd >= len(s) || s[idEnd] != '.' || keyRunLen(s[idEnd+1:]) == 0 {
			b.WriteString(s[:idEnd]) // no secret after it: nothing to hide
			s = s[idEnd:]
			continue
		}
		secretEnd := idEnd + 1 + keyRunLen(s[idEnd+1:])
		b.WriteString(s[:idEnd+1])
		b.WriteString("[redacted]")
		s = s[secretEnd:]
	}
}

// keyRunLen is how many leading bytes of s are in a key part's alphabet:
// base32 ids and base64url secrets (A–Z a–z 0–9 - _).
func keyRunLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return i
		}
	}
	return len(s)
}

func keyHash(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// Authenticate checks a presented key. It answers ErrBadKey or ErrRevokedKey
// (wrapped) for a key that must not log in; with ErrRevokedKey it also
// returns the key, so that the refusal can be logged under its name.
func (db *DB) Authenticate(ctx context.Context, key string) (*APIKey, error) {
	return authenticate(ctx, db.Read, key)
}

// KeyFileWorks reports whether the lane DB file at path lets key log in:
// after a restore, the DB's admin key file may hold a key of the lane DB
// it replaced. It reads the file read-only, with no lane serving it.
func KeyFileWorks(ctx context.Context, path, key string) (bool, error) {
	ro, err := openFileRO(ctx, path)
	if err != nil {
		return false, err
	}
	defer ro.Close()
	_, err = authenticate(ctx, ro, key)
	if errors.Is(err, ErrBadKey) || errors.Is(err, ErrRevokedKey) {
		return false, nil
	}
	return err == nil, err
}

// getter is a pool or connection a key is looked up through.
type getter interface {
	GetContext(ctx context.Context, dest any, query string, args ...any) error
}

func authenticate(ctx context.Context, q getter, key string) (*APIKey, error) {
	prefix, rest, ok1 := strings.Cut(key, ".")
	id, secret, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || prefix != keyPrefix || id == "" || secret == "" {
		return nil, ErrBadKey
	}
	var row struct {
		APIKey
		Salt []byte `db:"salt"`
		Hash []byte `db:"hash"`
	}
	err := q.GetContext(ctx, &row, `SELECT key_id, name, scopes, created_utc, revoked_utc, salt, hash
		FROM api_keys WHERE key_id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrBadKey
	}
	if err != nil {
		return nil, fmt.Errorf("look up API key: %w", err)
	}
	if subtle.ConstantTimeCompare(keyHash(row.Salt, secret), row.Hash) != 1 {
		return nil, ErrBadKey
	}
	if row.RevokedUTC.Valid {
		return &row.APIKey, ErrRevokedKey
	}
	return &row.APIKey, nil
}

// KeyRevoked reports whether the key with id keyID has been revoked. An id
// the DB holds no key for is not: a counter program that claims presells
// itself (docs/lanedb.md) may name its own.
func KeyRevoked(ctx context.Context, q sqlx.QueryerContext, keyID string) (bool, error) {
	var live int
	err := sqlx.GetContext(ctx, q, &live, qKeyLive, keyID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is key %s revoked: %w", keyID, err)
	}
	return live == 0, nil
}

var qKeyLive = stmt(`SELECT CASE WHEN revoked_utc IS NULL THEN 1 ELSE 0 END FROM api_keys WHERE key_id = ?`)

// ListAPIKeys lists every key, live and revoked, oldest first.
func (db *DB) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var keys []APIKey
	err := db.Read.SelectContext(ctx, &keys, `SELECT key_id, name, scopes, created_utc, revoked_utc
		FROM api_keys ORDER BY created_utc, key_id`)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey revokes the live key with that id or name. It returns the
// revoked key's id.
func (db *DB) RevokeAPIKey(ctx context.Context, idOrName string) (string, error) {
	var id string
	err := db.WriteTx(ctx, func(tx *Tx) error {
		var found []struct {
			ID   string `db:"key_id"`
			Name string `db:"name"`
		}
		err := tx.SelectContext(ctx, &found, `SELECT key_id, name FROM api_keys
			WHERE (key_id = ? OR name = ?) AND revoked_utc IS NULL ORDER BY key_id = ? DESC`, idOrName, idOrName, idOrName)
		switch {
		case err != nil:
			return fmt.Errorf("find API key: %w", err)
		case len(found) == 0:
			return fmt.Errorf("no live API key with id or name %q", idOrName)
		case len(found) > 1:
			// A name may look like another key's id: revoking whichever came
			// first would cut off the wrong device.
			return fmt.Errorf("%q is the id of key %q and the name of key %s: revoke by id (greenlane apikey list shows them)",
				idOrName, found[0].Name, found[1].ID)
		}
		id = found[0].ID
		_, err = tx.ExecContext(ctx, `UPDATE api_keys SET revoked_utc = ? WHERE key_id = ?`,
			time.Now().UTC().Format(DateTime), id)
		return err
	})
	return id, err
}

// RevokedSince lists keys revoked at or after since (a DateTime in UTC),
// and the latest revocation time seen ("" when none).
func (db *DB) RevokedSince(ctx context.Context, since string) ([]string, string, error) {
	var rows []struct {
		KeyID   string `db:"key_id"`
		Revoked string `db:"revoked_utc"`
	}
	err := db.Read.SelectContext(ctx, &rows, qRevokedSince, since)
	if err != nil {
		return nil, "", fmt.Errorf("list revoked keys: %w", err)
	}
	ids := make([]string, len(rows))
	latest := ""
	for i, r := range rows {
		ids[i] = r.KeyID
		latest = max(latest, r.Revoked)
	}
	return ids, latest, nil
}

var qRevokedSince = stmt(`SELECT key_id, revoked_utc FROM api_keys WHERE revoked_utc >= ? ORDER BY revoked_utc`)
