// strings.js: every word the counter screen shows, in one place for translation.
// A value from the lane DB (a name, a description) comes in as an isolated
// element, so the functions that take one return a list of parts.
const accountNeedsCustomer = "Account charges the customer's account, and this sale has no customer: take cash or EFTPOS.";

export default {
  title: "Counter",
  pairTitle: "Pair this counter",
  pairHelp: "Type or paste this counter's API key (made on the lane PC with: greenlane apikey create --name counter-1 --scope counter).",
  keyLabel: "Counter key",
  pair: "Pair",
  unpair: "Unpair",
  pairedAs: (name) => ["paired as ", name],
  paired: "paired (its name shows after the first recall)",
  refused: (m) => `The lane refused this key: ${m}. Pair again with a counter key.`,
  wrongScope: (scopes) => `This key has scope ${scopes || "none"}, not counter: it cannot take payments. Unpair and pair with a counter key.`,
  connecting: "Connecting to the lane…",
  offline: (m) => `Offline — reconnecting${m ? ` (${m})` : ""}`,
  notTakenBusy: "Not taken: the last change is still waiting for the lane. Press the key again once it has answered.",
  scanLabel: "Scan a ticket, or type its number or word, then Enter",
  scanPlaceholder: "ticket barcode, number or word",
  openTitle: "Open presells",
  openEmpty: "No presells waiting.",
  openMore: (n) => `More presells are waiting than these ${n}, the longest-waiting: scan or type the ticket of a newer one to recall it.`,
  ticket: (n) => `#${n}`,
  age: (s) => (s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`),
  heldBy: (who) => ["held by ", who],
  paidSoFar: (amount) => `${amount} already paid`,
  lines: (n) => (n === 1 ? "1 line" : `${n} lines`),
  noSale: "Scan a ticket to start.",
  saleTitle: (t, w) => [`Ticket #${t} · `, w],
  fromTablet: (t) => ["from ", t],
  customer: (name, disc) => (disc ? [name, ` (${disc}% off)`] : [name]),
  noCustomer: "no customer",
  colItem: "Item",
  colQty: "Qty",
  colTotal: "Total",
  grams: (g) => `${g} g`,
  driftTitle: "Prices changed since the tablet rang this up",
  driftLine: (d, oldp, newp) => [d, `: ${oldp} → ${newp}`],
  acceptPrices: "Accept new prices (F6)",
  total: "Total",
  paid: "Paid",
  balance: "To pay",
  changeDue: "Change due",
  payments: "Payments",
  reverse: "Reverse",
  reverseLast: "Reverse (F10)",
  // type: an isolated element (the payment type's name from the lane DB).
  reverseConfirm: (amount, type) => ["Press Reverse (F10 for the last payment) again within 5 seconds to take the ", amount, " ", type, " payment off this sale."],
  reversed: (amount, type) => ["The ", amount, " ", type, " payment is off this sale: give ", amount, " back to the customer."],
  amountLabel: "Amount tendered",
  cash: "Cash (F2)",
  eftpos: "EFTPOS (F3)",
  account: "Account (F4)",
  exact: (m) => `Exact ${m}`,
  complete: "Complete (F8)",
  release: "Release (Esc)",
  voidReasonLabel: "Reason to void",
  voidReasonPlaceholder: "e.g. customer left",
  void: "Void (F9)",
  voidNeedsReason: "Type a reason to void this sale.",
  completed: (t, change) => `Ticket #${t} complete.` + (change ? ` Give change: ${change}.` : ""),
  released: (t) => `Ticket #${t} released; it is back in the list.`,
  releasePaidConfirm: (t, paid) =>
    `Ticket #${t} holds ${paid} paid. Press Esc again within 5 seconds to release it with that payment on it, or F8 to complete it.`,
  releasedPaidInFull: (t, paid) => `Ticket #${t} released paid in full (${paid}): recall it and press F8 to complete it, giving any change due.`,
  releasedPaid: (t, paid) => `Ticket #${t} released holding ${paid} paid: whoever recalls it next must take only the rest.`,
  notAnAmount: (text) => ["“", text, "” is not an amount: type digits with at most two decimals, like 20 or 20.50."],
  amountAboveZero: "Type an amount above zero.",
  notATicket: (text) => ["“", text, "” is not a ticket: scan its barcode, or type its number (1 to 9999) or its two words, like apple-river."],
  voided: (t) => `Ticket #${t} voided.`,
  holdsPaid: (t, paid) => `Ticket #${t} holds ${paid} paid: complete it (F8), or press Esc twice to set it aside first.`,
  twoAmounts: (scan, amount) => [
    "Two amounts are typed: “", scan, "” in the scan field and “", amount, "” in Amount. Nothing was paid: clear one (Esc in a field clears it), then tender again.",
  ],
  nothingDue: (t) => `Nothing left to pay on #${t}: press F8 to complete.`,
  accountNeedsCustomer,
  // tenderName: how a tender reads after an amount ("$21.00 cash").
  tenderName: { 1: "cash", 3: "by EFTPOS", 200: "to account" },
  alsoTicket: (n, key, amount, how) =>
    `${n} is also ticket #${n}: press ${key} again to pay ${amount}${how ? " " + how : ""}, or Enter to recall #${n}.`,
  retrying: "The lane did not answer; trying again with the same request…",
  error: (code, m) => `${code}: ${m}`,
  // errors: one sentence for each lane error code the counter can meet.
  // x is {message (the lane's), cause (an unavailable's, "" if none), what (what was scanned), ticket (the one
  // on screen, or null), db (isolates a DB value), money}. A function may return "" to fall back to the lane's
  // message.
  errors: {
    // The lane says how long a hold has left, then its end on the store's
    // clock: the clock alone reads as lapsed in the hour repeated when
    // daylight saving ends.
    claimed: (x) => {
      let m = /a connection of this key \("([^"]*)"\) that has closed/.exec(x.message);
      if (m) return ["This counter's key held this presell on a screen that has closed (", x.db(m[1]), "). Scan the ticket again to take it back here."];
      m = /another connection of this key \("([^"]*)"\) for (\d+) more (min|s) \(until ([^)]+)\); that connection is not on this lane/.exec(x.message);
      if (m) return ["This counter's key holds this presell on another lane, or on this one from before it restarted (", x.db(m[1]), `), for ${holdLeft(m)}. Release it there if it is another lane's, or scan the ticket again here once that time is up.`];
      m = /another connection of this key \("([^"]*)"\) for (\d+) more (min|s) \(until ([^)]+)\);/.exec(x.message);
      if (m) return ["This counter's key holds this presell on another screen (another tab or window of ", x.db(m[1]), `) for ${holdLeft(m)}. Close that one, then scan the ticket again.`];
      m = /held by "([^"]*)" for (\d+) more (min|s) \(until ([^)]+)\)$/.exec(x.message);
      if (m) return ["Another counter has this presell: ", x.db(m[1]), `, for ${holdLeft(m)}.`];
      m = /belongs to "([^"]*)"/.exec(x.message);
      if (m) return ["This presell belongs to ", x.db(m[1]), "; a counter key can take it only once it is submitted."];
      m = /is held by "([^"]*)"/.exec(x.message);
      if (m) return ["", x.db(m[1]), " holds this sale, not this counter. Scan its ticket again."];
      return "Another counter has this presell.";
    },
    claim_lost: (x) => `${tk(x)} is no longer held by this counter (its hold lapsed, or another counter took it over). Scan its ticket again.`,
    underpaid: (x) => {
      const m = /add (\S+) more$/.exec(x.message);
      return `${tk(x)} is not paid in full` + (m ? `: take ${x.money(m[1])} more` : "") + " before completing.";
    },
    has_payments: () => "This sale holds payments: reverse them first.",
    not_found: (x) => {
      if (!x.what) return `${tk(x)} is no longer open on the lane.`;
      const said = ["No open presell matches “", x.what, "”."];
      if (/ was completed$/.test(x.message)) said.push(" That ticket's sale is already complete.");
      if (/ was cancelled$/.test(x.message)) said.push(" That ticket's sale was voided.");
      return said;
    },
    conflict: (x) => {
      if (/still being built/.test(x.message)) return "That presell is still being built on its tablet: it has not been submitted yet.";
      if (/this sale has no customer/.test(x.message)) return accountNeedsCustomer;
      if (/charged to the customer's account/.test(x.message)) return "This sale holds a payment to the customer's account: reverse it before taking the customer off.";
      if (/only cash gives change/.test(x.message)) return `${tk(x)} now adds up to less than its payments other than cash, and only cash gives change: reverse a payment, then take the balance again.`;
      if (/^nothing is due/.test(x.message)) return x.ticket != null ? `Nothing left to pay on #${x.ticket}: press F8 to complete.` : "Nothing is left to pay: press F8 to complete.";
      return `${tk(x)} changed on another screen, or is not held here. Scan its ticket again.`;
    },
    limit_reached: () => "The lane's limit for this is reached (too many payments on this sale, or sales held at once). Finish or release a sale first.",
    // A refused tender says why, with the lane's figures: it is written
    // for people, so one the counter has no sentence for shows as is.
    bad_argument: (x) => {
      if (x.op !== "tender") return "The lane could not read that request. Check what was typed and try again.";
      let m = /(\$\S+) cash against (\$\S+) due would leave (\$\S+) in change, more than this lane gives/.exec(x.message);
      if (m) return `${m[1]} cash against ${m[2]} due would leave ${m[3]} in change, more than this lane gives: check the amount.`;
      m = /a (.+) payment of (\$\S+) is more than the balance due of (\$[^;\s]+); only cash gives change/.exec(x.message);
      if (m) return ["", x.db(m[1]), ` of ${m[2]} is more than the ${m[3]} due: only cash gives change, so take at most ${m[3]} by `, x.db(m[1]), "."];
      return ["The lane refused this tender: ", x.db(x.message.replace(/^v\.\w+: /, "")), ""];
    },
    forbidden: () => "This counter's key may not do that: pair it with a counter key.",
    rate_limited: () => "The lane is busy: wait a moment and try again.",
    // With a cause the lane says why in words for people (its clock, its
    // disk, the store database); without one it is busy or shutting down.
    unavailable: (x) => {
      if (x.cause === "outcome_unknown") return `The lane lost the store database while saving this, so it may have gone through. Press the same key again: if it went through, the lane says so and does not take it twice.`;
      if (x.cause) return ["The lane cannot take changes now: ", x.db(x.message), ""];
      return "The lane is shutting down or too busy: try again in a moment.";
    },
    offline: () => "The lane did not answer: check the connection and try again.",
    ik_reused: () => "The lane already saw this request with other details: try again.",
    internal: () => "The lane hit a fault: press the same key again (the lane does not take a change twice), and tell the manager if it happens again (the lane's log has the details).",
  },
  legendTitle: "Keys",
  legend: [
    ["/", "scan field"],
    ["Enter", "recall"],
    ["F2", "cash (typed amount, or exact)"],
    ["F3", "EFTPOS (typed amount, or exact)"],
    ["F4", "account (typed amount, or exact)"],
    ["F6", "accept new prices"],
    ["F7", "amount field"],
    ["F8", "complete"],
    ["F9", "void (with reason)"],
    ["F10", "reverse the last payment (press twice)"],
    ["Esc", "release / clear (twice if paid)"],
  ],
};

// holdLeft words the time a hold has left from a claimed message's match
// (m[2] the count, m[3] its unit, m[4] the end as HH:MM).
function holdLeft(m) {
  return `${m[2]} more ${m[3]} (until ${m[4]})`;
}

// tk names the ticket an error is about: the one on screen.
function tk(x) {
  return x.ticket != null ? `Ticket #${x.ticket}` : "This presell";
}

// Global payment codes of the lane's tender types (cash is 1; the demo
// fixture's EFTPOS is 3 and account 200). Only cash may exceed the balance.
export const tenders = { cash: 1, eftpos: 3, account: 200 };
