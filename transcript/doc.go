// Package transcript records FD1 conversations with a lane and replays them
// against any server, reporting the first packet that differs.
//
// # Format
//
// A transcript is JSON Lines: one JSON object per line, run top to bottom.
// Blank lines are skipped. A transcript must send a packet: one that sends
// none (emptied, or comments only) fails its replay. Each line is exactly
// one of:
//
//	{"#": "text"}                                     a comment
//	{"open": "tablet", "url_query": "?purpose=presell", "login": {}}
//	                                                  open a socket named tablet
//	{"socket": "tablet", "send": {packet}}            send a packet on it
//	{"socket": "tablet", "expect": {pattern}}         expect a packet on it
//	{"close": "tablet"}                               close it
//
// "socket" may be left out: it is then "main". "url_query" is added to the
// server's socket URL. "login" logs the new socket in (fd1.session.login,
// rq "login"): its "purpose" is the login purpose (customerdisplay,
// debugscope) and its "key" names the API key — left out, the key given for
// the socket's name (replay --key-for tablet=KEY), else the default key
// (--key); "$KEY" is the default key, "$KEY_NAME" the key for NAME (NAME
// in any case; without a key for NAME the replay fails at that line, also
// where a sent packet names it). The login reply is checked for success
// but is not part of the transcript (it lists the key's scopes). A socket
// without "login" stays logged out.
//
// # Patterns
//
// An expect line's pattern is JSON compared with the packet:
//
//   - literals must be equal; numbers compare by value (9.9 = 9.90);
//   - an object matches an object that has at least the pattern's fields:
//     extra fields are allowed, so a server may add fields, unless the
//     pattern object has "$exact": true;
//   - an array matches an array of the same length, element by element,
//     unless its last element is "$more" (more elements may follow);
//   - a string starting with "$" is a placeholder: "$any" (any value, the
//     field must be there), "$absent" (the field must not be there),
//     "$number", "$string", "$bool", "$object", "$array", "$datetime"
//     ("2026-11-27 08:32:58" or ISO 8601), "$uuid" and its synonym
//     "$physkey";
//   - "$capture:NAME" matches any value and binds NAME to it; "$NAME" later
//     must equal it, in patterns and in sent packets (where it is replaced
//     by the value, of whatever JSON type);
//   - in a sent packet, "$new:NAME" is a fresh random UUID bound to NAME
//     (an idempotency key "ik" that must be new on every replay);
//   - "$$text" is the literal string "$text".
//
// # Which packet an expect line is about
//
// Packets are checked on their own socket only, so sockets may interleave
// freely. A reply (a pattern with "r") is the next reply with the pattern's
// rp, wherever it arrived among events: a chunked reply (mo:"chunk") is
// several replies with one rp, "ch" 1, 2, … and "last":true on the final
// one, recorded as one expect line each and matched in the order they
// came (FinalReply tells the last); an event (no "r") is the next event of
// the firehose named by the pattern's rp, so each firehose's events are
// checked in order. A pattern without a literal rp takes the first reply,
// or the first event, not yet taken. Packets that no line expects (events
// that arrived after a recording stopped, say) do not fail a replay.
//
// # Recording
//
// A Recorder (used by greenlane client --record) writes sent packets as
// send lines and received ones as expect lines, and turns values that
// change from one server to the next into placeholders: UUIDs are captured
// on first sight ("$capture:physkey1") and written as variables after that
// ("$physkey1"), also in sent packets; date-times become "$datetime"; the
// values of IdentityFields (ticket, sid, key names…) are captured like
// UUIDs; NumberFields (the journal's seq) become "$number"; an "ik" UUID
// the client made up becomes "$new:ik1". RecordOptions.Literal keeps every
// value as it was, for a server in deterministic mode.
package transcript
