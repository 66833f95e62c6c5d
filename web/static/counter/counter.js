// counter.js: the cashier's screen. Keyboard and USB scanner first: one
// field always has focus and takes a ticket's barcode, number or word; the
// function keys tender, complete, release and void. The lane prices
// everything: this page only shows the sale the lane answered with.
import { Lane, FD1Error, newIK, money, el } from "../lib/fd1.js";
import S, { tenders } from "./strings.js";

const keyStore = "greenlane.counter.key";
const nameStore = "greenlane.counter.name";
const heartbeatEvery = 30000; // ms; the lane's claim lease is 120 s by default
const changeTries = 5; // attempts at one change whose reply was lost

const app = document.getElementById("app");
let lane = null;
let sale = null; // the recalled sale, as the lane last answered
let presells = []; // open presells, as get_presells last answered
let listFetchedAt = 0;
let listMore = false; // more presells are open than the list holds
let heartbeat = 0;
let ageTicker = 0;
const ageEvery = 5000; // ms between redraws of the list's ages
let busy = false;
// releaseArmed is the sale a first Esc offered to release while it holds
// payments, and when that offer lapses (ms since the epoch): a second Esc
// before then releases it. One Esc must not put a paid-for presell back in
// the list, where it reads as one nobody has paid for yet.
let releaseArmed = { physkey: "", until: 0 };
const confirmFor = 5000; // ms a second press (Esc, Reverse) has to come
// reverseArmed is the payment a first Reverse press offered to reverse,
// and when that offer lapses: a second press before then reverses it. One
// slip of the mouse must not take a payment off while its money stays in
// the drawer.
let reverseArmed = { physkey: "", seq: 0, until: 0 };

// db isolates one text that comes from the lane DB (a product, a customer,
// a key's name): a name with bidi controls in it cannot reverse or reorder
// the words around it, and a long one wraps instead of widening the page.
const db = (text) => el("bdi", { class: "db" }, text == null ? "" : String(text));

// --- pairing ---

function start() {
  // A key in the address (#key=…, as the lane's QR links carry) pairs this
  // counter; it is taken out of the address bar at once.
  const m = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (m) {
    localStorage.setItem(keyStore, decodeURIComponent(m[1]));
    localStorage.removeItem(nameStore);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const key = localStorage.getItem(keyStore);
  if (!key) return showPairing("");
  showCounter(key);
}

function showPairing(message) {
  const input = el("input", { type: "password", id: "pair-key", autocomplete: "off", spellcheck: "false" });
  const form = el(
    "form",
    {
      class: "card pair",
      id: "pair-form",
      onsubmit: (e) => {
        e.preventDefault();
        const k = input.value.trim();
        if (!k) return;
        localStorage.setItem(keyStore, k);
        localStorage.removeItem(nameStore);
        showCounter(k);
      },
    },
    el("h1", {}, S.pairTitle),
    el("p", { class: "muted" }, S.pairHelp),
    message ? el("p", { class: "banner error", role: "alert" }, message) : null,
    el("label", { for: "pair-key" }, S.keyLabel),
    input,
    el("button", { class: "primary", type: "submit", id: "pair-go" }, S.pair),
  );
  app.replaceChildren(el("main", {}, form));
  input.focus();
}

function unpair() {
  if (lane) lane.stop();
  lane = null;
  clearInterval(heartbeat);
  clearInterval(ageTicker);
  sale = null;
  localStorage.removeItem(keyStore);
  localStorage.removeItem(nameStore);
  showPairing("");
}

// --- the screen ---

const ui = {};

function showCounter(key) {
  ui.who = el("span", { class: "who", id: "who" }, ...pairedLabel());
  ui.status = el("div", { class: "banner hidden", id: "status", role: "status" });
  ui.message = el("div", { class: "message hidden", id: "message", role: "alert" });
  ui.scan = el("input", {
    type: "text",
    id: "scan",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: S.scanPlaceholder,
  });
  ui.list = el("ol", { class: "presells", id: "presells" });
  listRows.clear();
  ui.sale = el("section", { class: "card sale", id: "sale", "aria-live": "polite" });
  ui.legend = el(
    "dl",
    { class: "legend", id: "legend" },
    S.legend.flatMap(([k, what]) => [el("dt", {}, el("kbd", {}, k)), el("dd", {}, what)]),
  );
  app.replaceChildren(
    el(
      "header",
      { class: "topbar" },
      el("strong", {}, S.title),
      el("span", { class: "row" }, ui.who, el("button", { id: "unpair", onclick: unpair }, S.unpair)),
    ),
    ui.status,
    el(
      "main",
      { class: "counter" },
      el(
        "div",
        { class: "left" },
        el(
          "form",
          {
            class: "card scanform",
            onsubmit: (e) => {
              e.preventDefault();
              recall(ui.scan.value);
            },
          },
          el("label", { for: "scan" }, S.scanLabel),
          ui.scan,
        ),
        ui.message,
        el("section", { class: "card" }, el("h2", {}, S.openTitle), ui.list),
        el("section", { class: "card" }, el("h2", {}, S.legendTitle), ui.legend),
      ),
      ui.sale,
    ),
  );
  renderSale();
  renderList();

  lane = new Lane({ key }).start();
  lane.addEventListener("status", (e) => onStatus(e.detail));
  lane.addEventListener("login", (e) => {
    // Payments, completion and voids need the counter scope: a tablet's
    // key here would fail at the first tender, so say so at once.
    const scopes = (e.detail && e.detail.scopes) || [];
    if (!scopes.includes("counter") && !scopes.includes("admin")) say(S.wrongScope(scopes.join(", ")), "error");
    refreshList();
    if (sale) reclaim();
  });
  lane.firehose("presell", {}, () => refreshListSoon());
  clearInterval(heartbeat);
  heartbeat = setInterval(() => {
    if (sale) beat();
  }, heartbeatEvery);
  // Ages move on: the list writes them in place (renderList).
  clearInterval(ageTicker);
  ageTicker = setInterval(renderList, ageEvery);
  focusScan();
}

function pairedLabel() {
  const name = localStorage.getItem(nameStore);
  return [name ? S.pairedAs(db(name)) : S.paired].flat(); // never any part of the key on screen
}

function onStatus({ state, message }) {
  ui.status.className = "banner";
  if (state === "online") ui.status.classList.add("hidden");
  else if (state === "connecting") ui.status.textContent = S.connecting;
  else if (state === "offline") {
    ui.status.classList.add("offline");
    ui.status.textContent = S.offline(message);
  } else if (state === "refused") {
    lane.stop();
    localStorage.removeItem(keyStore);
    showPairing(S.refused(message));
  }
}

// say shows a message: text, or an array of text and elements (a DB value
// in it is an isolated element, see db).
function say(text, kind = "info") {
  ui.message.className = `message ${kind}`;
  ui.message.replaceChildren(...[text].flat());
}

function quiet() {
  ui.message.className = "message hidden";
  ui.message.textContent = "";
}

// focusScan keeps the scanner's field ready, unless the cashier is typing
// in another field (amount, reason).
function focusScan() {
  const a = document.activeElement;
  if (a && a !== ui.scan && (a.tagName === "INPUT" || a.tagName === "TEXTAREA")) return;
  ui.scan.focus();
}

// --- talking to the lane ---

// change sends one change with a fresh ik; when its reply is lost (the link
// dropped, or no reply in time) it sends the same request again with the
// same ik once the lane is back, so the lane applies it exactly once. A
// change the lane could not say it made (see unsettled) keeps its ik for
// the cashier's retry of the same change.
async function change(a, fields = {}) {
  const same = JSON.stringify([a, fields]);
  const ik = unsettled.same === same ? unsettled.ik : newIK();
  const packet = { ...fields, ik };
  for (let i = 1; ; i++) {
    try {
      const reply = await lane.call(a, packet);
      unsettled = { same: "", ik: "" };
      return reply;
    } catch (e) {
      unsettled = e instanceof FD1Error && unsure.has(e.code) ? { same, ik } : { same: "", ik: "" };
      if (!(e instanceof FD1Error) || e.code !== "offline" || i >= changeTries) throw e;
      say(S.retrying, "warn");
      await online();
    }
  }
}

// unsure are the answers after which a change may or may not have been
// made: it was not answered (offline), the lane could not make it for now
// or lost the store database while saving it (unavailable), or it failed
// on the lane (internal). unsettled is the last such change, as
// [endpoint, fields], with its ik: pressing the same key again sends the
// same ik, so a tender the lane did take is answered as taken, not taken
// twice. Any other answer settles it; a different change gets a new ik.
const unsure = new Set(["offline", "unavailable", "internal"]);
let unsettled = { same: "", ik: "" };

// online resolves when the lane is connected again (or after a while, so
// the caller's retry can report the failure).
function online() {
  if (lane.online) return new Promise((r) => setTimeout(r, 300));
  return new Promise((resolve) => {
    const t = setTimeout(done, 10000);
    function done() {
      clearTimeout(t);
      lane.removeEventListener("login", done);
      resolve();
    }
    lane.addEventListener("login", done);
  });
}

// first is the sale (or claim) a reply carries: most endpoints answer
// {rows:[sale]}, complete and heartbeat answer with the object itself.
function first(reply) {
  const d = reply && reply.data;
  if (!d) return null;
  if (Array.isArray(d.rows)) return d.rows.length ? d.rows[0] : null;
  return d;
}

// explain turns a lane error into words for the cashier: one sentence per
// code the counter can meet (strings.js, S.errors), naming the ticket on
// screen rather than the sale's physkey; a code it does not know shows the lane's own message.
function explain(e, what, op) {
  if (!(e instanceof FD1Error)) return String(e);
  const f = S.errors[e.code];
  const said = f && f({ message: e.message || "", cause: e.cause, what, op, ticket: sale ? sale.ticket : null, db, money });
  return said || S.error(e.code, e.message);
}

// act runs one change at a time; what (the scanned text) and op (what
// was asked: "tender") let an error be explained in the cashier's words.
async function act(fn, what, op) {
  if (busy) {
    // One change at a time: a key pressed meanwhile is not taken, and
    // while the lane is slow or away that can be seconds, so say so.
    say(S.notTakenBusy, "warn");
    return;
  }
  busy = true;
  setBusy(true);
  try {
    await fn();
  } catch (e) {
    say(explain(e, what, op), "error");
  } finally {
    busy = false;
    setBusy(false);
    focusScan();
  }
}

function setBusy(on) {
  document.body.classList.toggle("busy", on);
}

// --- recall ---

// recallArgs reads what was scanned or typed: a ticket number (1 to 9999),
// a ticket word (two words joined by "-"), or a ticket's barcode (letters and
// digits, at most 64). Anything else is no ticket, and null: the page says
// so instead of asking the lane.
function recallArgs(text) {
  // "#12" as the list, the display and the ticket write it.
  const t = text.trim().replace(/^#\s*(?=\d)/, "");
  if (/^\d{1,4}$/.test(t)) return Number(t) >= 1 ? { ticket: Number(t) } : null;
  // Two words, as the ticket writes them or as a customer says them
  // ("amber apple"): any spaces or dashes between them.
  const w = /^([a-z]+)[\s-]+([a-z]+)$/i.exec(t);
  if (w) return { word: `${w[1]}-${w[2]}`.toLowerCase() };
  if (/^[A-Za-z0-9]{1,64}$/.test(t)) return { barcode: t };
  return null;
}

function recall(text) {
  const t = (text || "").trim();
  if (!t || busy) return; // busy: the scan stays in the field for another Enter
  // The next scan starts on an empty field, whatever this one brings (the
  // message quotes what was scanned).
  ui.scan.value = "";
  const args = recallArgs(t);
  if (!args) return say(S.notATicket(db(t.length > 40 ? t.slice(0, 40) + "…" : t)), "error");
  act(async () => {
    const old = sale;
    // A sale holding payments is finished (or released with Esc) first.
    if (old && old.payments && old.payments.length) return say(S.holdsPaid(old.ticket, money(old.paid)), "warn");
    // The sale on screen is given back only once the new one is recalled:
    // a mis-scan must not cost the cashier the sale they were serving.
    const r = first(await change("fd1.presell.recall", { v: args }));
    if (old && r && r.physkey !== old.physkey) await releaseQuietly(old);
    quiet();
    setSale(r);
    if (r && r.claim && r.claim.holder && !localStorage.getItem(nameStore)) {
      localStorage.setItem(nameStore, r.claim.holder);
      ui.who.replaceChildren(...pairedLabel());
    }
    refreshListSoon();
  }, t);
}

function recallPresell(p) {
  recall(p.ticket_barcode || String(p.ticket));
}

// releaseQuietly gives back a sale the counter no longer shows (another
// was recalled in its place). A sale already gone from this counter is no
// error; any other failure leaves the claim to lapse on the lane.
async function releaseQuietly(old) {
  try {
    await change("fd1.presell.release", { k: old.physkey });
  } catch (e) {
    if (!(e instanceof FD1Error) || !["conflict", "claim_lost", "not_found", "offline"].includes(e.code)) throw e;
  }
}

function setSale(s) {
  sale = s;
  renderSale();
}

// updateSale takes a reply that has the sale but not the recall extras.
function updateSale(r) {
  if (!r) return;
  const drift = r.price_drift || (sale && sale.price_drift) || [];
  const claim = r.claim || (sale && sale.claim);
  setSale({ ...r, price_drift: drift, claim });
}

// reclaim recalls the sale on screen again after the link came back: a
// claim belongs to the socket that made it, so the new socket claims it
// anew; the lane hands a key its own claim back once the old socket has
// closed (until the lane notices a dead link, it answers claimed).
async function reclaim() {
  const pk = sale.physkey;
  try {
    const r = first(await change("fd1.presell.recall", { v: { ticket: sale.ticket } }));
    if (r && r.physkey === pk) updateSale(r);
    else setSale(r);
  } catch (e) {
    say(explain(e), "error");
    if (sale && sale.physkey === pk) setSale(null);
  }
}

function beat() {
  if (!sale || !lane.online) return;
  const pk = sale.physkey;
  lane.call("fd1.presell.heartbeat", { k: pk }).then(
    (r) => {
      const c = first(r);
      if (c && sale && sale.physkey === pk) sale.claim = c;
    },
    (e) => {
      if (e.code === "claim_lost" || e.code === "claimed" || e.code === "conflict") {
        say(explain(e), "error");
        if (sale && sale.physkey === pk) setSale(null);
      }
    },
  );
}

// --- tender, complete, release, void ---

// readAmount reads a typed amount exactly: digits with at most one "." and
// two decimals ("10", "10.5", "22.66", ".50"), after a $ if the cashier
// writes one, as the screen writes money ("$10.50"). It returns cents, or
// NaN for anything else ("20,50", "1.234", "abc"): a figure the page would
// have to guess at is refused, never paid.
function readAmount(text) {
  const m = /^\$?\s*(\d*)(?:\.(\d{0,2}))?$/.exec(text);
  if (!m || !(m[1] || m[2])) return NaN;
  return Number(m[1] || "0") * 100 + Number((m[2] || "").padEnd(2, "0"));
}

// tendered is the amount a tender key or button pays, in cents, and the
// field it came from: what is typed in the scan field (it has the focus as
// the cashier types) or in the Amount field, else the exact balance. from
// is the field whose Enter was pressed: that field's figure, whatever the
// other holds. With text in both fields and no Enter, the page cannot know
// which the cashier meant: two is set, and nothing is paid.
function tendered(from) {
  const typed = [ui.scan, ui.amount].filter((f) => f && f.value.trim() && (!from || f === from));
  if (typed.length > 1) return { two: typed.map((f) => f.value.trim()) };
  if (typed.length) {
    const text = typed[0].value.trim();
    return { cents: readAmount(text), field: typed[0], text };
  }
  return { cents: Math.round(Math.max(0, Number(sale.balance)) * 100), field: null, text: "" };
}

// payArmed is a tender whose figure is also an open ticket's number, held
// back for a second press of the same key: "21" and F2 may be the next
// ticket's number with the wrong key pressed, not $21.00.
let payArmed = { key: "", text: "", physkey: "", until: 0 };
const payConfirmFor = 5000; // ms the second press has to come

// pay tenders type; key names the key or button (F2, F3, F4) for a second
// press, from the field whose Enter was pressed.
function pay(type, key, from) {
  if (!sale) return;
  const t = tendered(from);
  if (t.two) return say(S.twoAmounts(db(t.two[0]), db(t.two[1])), "error");
  const { cents, field, text } = t;
  if (Number.isNaN(cents)) return say(S.notAnAmount(db(text)), "error");
  // Nothing due: the lane would refuse the tender; say so without asking.
  if (!(Number(sale.balance) > 0)) return say(S.nothingDue(sale.ticket), "warn");
  if (!(cents > 0)) return say(S.amountAboveZero, "error");
  // An account payment charges the sale's customer: with none, the lane
  // would refuse it; say so without asking.
  if (type === tenders.account && !sale.customer) return say(S.accountNeedsCustomer, "error");
  const armed = payArmed;
  payArmed = { key: "", text: "", physkey: "", until: 0 };
  if (field === ui.scan && /^\d+$/.test(text) && !from) {
    const n = Number(text);
    const other = presells.some((p) => p.ticket === n && p.physkey !== sale.physkey);
    const again = armed.key === key && armed.text === text && armed.physkey === sale.physkey && Date.now() < armed.until;
    if (other && !again) {
      payArmed = { key, text, physkey: sale.physkey, until: Date.now() + payConfirmFor };
      return say(S.alsoTicket(n, key, money(cents / 100), S.tenderName[type] || ""), "warn");
    }
  }
  act(async () => {
    const r = first(await change("fd1.salesbuilder.sale_add_payment", { k: sale.physkey, v: { type, amount: cents / 100 } }));
    if (field) field.value = "";
    quiet();
    updateSale(r);
    // The amount is spent: the next scan (the next ticket, a card's
    // slip) must not land in its field.
    ui.scan.focus();
  }, "", "tender");
}

function reversePayment(p) {
  if (!sale) return;
  const pk = sale.physkey;
  const amount = money(p.amount);
  if (!(reverseArmed.physkey === pk && reverseArmed.seq === p.sequence && Date.now() < reverseArmed.until)) {
    reverseArmed = { physkey: pk, seq: p.sequence, until: Date.now() + confirmFor };
    return say(S.reverseConfirm(amount, db(p.typename)), "warn");
  }
  reverseArmed = { physkey: "", seq: 0, until: 0 };
  act(async () => {
    const r = first(await change("fd1.salesbuilder.sale_remove_payment", { k: pk, v: { seq: p.sequence } }));
    updateSale(r);
    say(S.reversed(amount, db(p.typename)), "done");
  });
}

// reverseLast is Reverse on the last payment, from the keyboard: a
// cashier's hands stay on it, and the last tender is the one mistyped.
function reverseLast() {
  const pays = (sale && sale.payments) || [];
  if (pays.length) reversePayment(pays[pays.length - 1]);
}

function acceptPrices() {
  if (!sale || !(sale.price_drift || []).length) return;
  act(async () => {
    const r = first(await change("fd1.presell.accept_prices", { k: sale.physkey }));
    quiet();
    setSale(r);
  });
}

function complete() {
  if (!sale) return;
  act(async () => {
    const r = first(await change("fd1.salesbuilder.salesbuilder_complete", { k: sale.physkey }));
    const t = sale.ticket;
    setSale(null);
    say(S.completed(t, r && Number(r.change) > 0 ? money(r.change) : ""), "done");
    refreshListSoon();
  });
}

function release() {
  if (!sale) {
    ui.scan.value = "";
    quiet();
    return;
  }
  const paid = Number(sale.paid) > 0 || (sale.payments || []).length > 0;
  const pk = sale.physkey;
  if (paid && !(releaseArmed.physkey === pk && Date.now() < releaseArmed.until)) {
    releaseArmed = { physkey: pk, until: Date.now() + confirmFor };
    say(S.releasePaidConfirm(sale.ticket, money(sale.paid)), "warn");
    return;
  }
  releaseArmed = { physkey: "", until: 0 };
  act(async () => {
    const t = sale.ticket;
    const held = paid ? money(sale.paid) : "";
    const full = paid && !(Number(sale.balance) > 0);
    await change("fd1.presell.release", { k: sale.physkey });
    setSale(null);
    say(full ? S.releasedPaidInFull(t, held) : held ? S.releasedPaid(t, held) : S.released(t), held ? "warn" : "info");
    refreshListSoon();
  });
}

function voidSale() {
  if (!sale) return;
  const reason = ui.reason.value.trim();
  if (!reason) {
    say(S.voidNeedsReason, "warn");
    ui.reason.focus();
    return;
  }
  act(async () => {
    const t = sale.ticket;
    await change("fd1.salesbuilder.salesbuilder_cancel", { k: sale.physkey, v: { reason } });
    setSale(null);
    say(S.voided(t), "info");
    refreshListSoon();
  });
}

// --- open presells ---

async function refreshList() {
  if (!lane || !lane.online) return;
  try {
    // paid: a released presell that already holds money must not look unpaid.
    // oldest: past the lane's 500 rows, the newest are left out, never the
    // customers who have waited longest.
    const r = await lane.call("fd1.presell.get_presells", { v: { paid: true, oldest: true } });
    presells = (r.data && r.data.rows) || [];
    listMore = !!(r.data && r.data.more);
    // Oldest first: the customer who has waited longest.
    presells.sort((a, b) => (a.submitted_utc < b.submitted_utc ? -1 : a.submitted_utc > b.submitted_utc ? 1 : a.ticket - b.ticket));
    listFetchedAt = Date.now();
    renderList();
    refreshAtLapse();
  } catch (e) {
    // forbidden: a key without the counter scope, said once at login.
    if (e.code !== "offline" && e.code !== "forbidden") say(explain(e), "error");
  }
}

let listTimer = 0;
function refreshListSoon() {
  clearTimeout(listTimer);
  listTimer = setTimeout(refreshList, 150);
}

// refreshAtLapse fetches the list again once the earliest hold it shows has
// lapsed: a lease that runs out sends no event, and the list would go on
// saying "held by counter-1". One timer, for the earliest hold only; the
// refresh sets the next. The lane's clock may differ from this screen's
// (a wrong device clock, serve --clock), so the time left is counted on
// the lane's: its "now" is a row's submitted_utc plus its age (whole
// seconds, so never later than the lane's). claim_expires is whole seconds
// too: a second more makes sure the refresh comes after the lapse, not
// just before it, where it would find the hold still there.
let lapseTimer = 0;
function refreshAtLapse() {
  clearTimeout(lapseTimer);
  let laneNow = 0;
  let first = Infinity;
  for (const p of presells) {
    // "2026-04-04 13:59:00.123456" (UTC): milliseconds are all Date.parse
    // is sure to read.
    const sub = Date.parse(String(p.submitted_utc).replace(" ", "T").replace(/(\.\d{3})\d*$/, "$1") + "Z");
    if (!isNaN(sub)) laneNow = Math.max(laneNow, sub + p.age * 1000);
    const exp = p.claimed_by ? Date.parse(p.claim_expires) : NaN;
    if (!isNaN(exp)) first = Math.min(first, exp);
  }
  if (first === Infinity || !laneNow) return;
  lapseTimer = setTimeout(refreshList, Math.max(first - laneNow, 0) + 1000);
}

// renderList brings the list up to date in place. Each presell keeps its
// button while it is listed: the list is drawn again on every tablet's
// submit and every heartbeat, and a button built anew between the press and
// the release of a click would take no click.
function renderList() {
  if (!ui.list) return;
  const since = listFetchedAt ? Math.floor((Date.now() - listFetchedAt) / 1000) : 0;
  const listed = new Set();
  const items = presells.map((p) => {
    listed.add(p.physkey);
    let row = listRows.get(p.physkey);
    if (!row) {
      row = { sig: "" };
      row.age = el("span", { class: "age" });
      row.button = el("button", { type: "button", onclick: () => recallPresell(row.p) });
      row.li = el("li", {}, row.button);
      listRows.set(p.physkey, row);
    }
    row.p = p;
    fillPresell(row, p);
    row.age.textContent = S.age(p.age + since);
    return row.li;
  });
  for (const k of listRows.keys()) if (!listed.has(k)) listRows.delete(k);
  if (listMore) items.push(el("li", { class: "muted", id: "presells-more" }, S.openMore(presells.length)));
  if (!items.length) items.push(el("li", { class: "muted" }, S.openEmpty));
  // Moves only what is out of place: the list is oldest first, so new
  // presells join at its foot and the rows above stay where they are.
  items.forEach((li, i) => {
    if (ui.list.children[i] !== li) ui.list.insertBefore(li, ui.list.children[i] || null);
  });
  while (ui.list.children.length > items.length) ui.list.lastChild.remove();
}

// listRows holds each listed presell's row, by physkey.
const listRows = new Map();

// fillPresell redraws a row's button when what it shows, but its age, changed.
function fillPresell(row, p) {
  const sig = JSON.stringify([p.ticket, p.ticket_barcode, p.ticket_word, p.customer, p.tablet, p.lines, p.claimed_by, p.paid, p.saletotal]);
  if (sig === row.sig) return;
  row.sig = sig;
  row.button.className = "presell" + (p.claimed_by ? " held" : "");
  row.button.dataset.ticket = p.ticket;
  row.button.replaceChildren(
    el("span", { class: "ticket" }, S.ticket(p.ticket)),
    el("span", { class: "word" }, db(p.ticket_word || "")),
    el("span", { class: "cust" }, db(p.customer || "")),
    el("span", { class: "meta muted" }, row.age, " · ", db(p.tablet), " · ", S.lines(p.lines)),
    p.claimed_by ? el("span", { class: "holder" }, S.heldBy(db(p.claimed_by))) : "",
    Number(p.paid) > 0 ? el("span", { class: "paid" }, S.paidSoFar(money(p.paid))) : "",
    el("span", { class: "money" }, money(p.saletotal)),
  );
}

// --- the sale ---

function renderSale() {
  if (!ui.sale) return;
  // What the cashier was typing survives a redraw of the same sale.
  const same = sale && ui.salePK === sale.physkey;
  const kept = same && ui.amount ? { amount: ui.amount.value, reason: ui.reason.value, focus: document.activeElement && document.activeElement.id } : null;
  ui.salePK = sale ? sale.physkey : "";
  ui.amount = null;
  ui.reason = null;
  if (!sale) {
    ui.sale.classList.add("empty");
    ui.sale.replaceChildren(el("p", { class: "muted big" }, S.noSale));
    return;
  }
  ui.sale.classList.remove("empty");
  const s = sale;
  const drift = s.price_drift || [];
  const drifted = new Set(drift.map((d) => d.seqnce));
  const cust = s.customer ? S.customer(db(s.customer.name), Number(s.customer.discount)) : S.noCustomer;
  const balance = Number(s.balance);

  const lines = el(
    "table",
    { class: "lines", id: "lines" },
    el("thead", {}, el("tr", {}, el("th", {}, S.colItem), el("th", { class: "num" }, S.colQty), el("th", { class: "num" }, S.colTotal))),
    el(
      "tbody",
      {},
      (s.lines || []).map((ln) =>
        el(
          "tr",
          { class: drifted.has(ln.seqnce) ? "drift" : null },
          el("td", { class: "item" }, ln.product ? db(ln.product.description) : `#${ln.pid}`),
          el("td", { class: "num" }, ln.measurement ? S.grams(ln.qty) : String(ln.qty)),
          el("td", { class: "num money" }, money(ln.price)),
        ),
      ),
    ),
  );

  const driftBox = drift.length
    ? el(
        "div",
        { class: "drift-box", id: "drift", role: "alert" },
        el("strong", {}, S.driftTitle),
        el("ul", {}, drift.map((d) => el("li", {}, S.driftLine(db(d.description), money(d.old_price), money(d.new_price))))),
        el("button", { class: "primary", id: "accept-prices", onclick: acceptPrices }, S.acceptPrices),
      )
    : null;

  const payments = (s.payments || []).length
    ? el(
        "ul",
        { class: "payments", id: "payments" },
        s.payments.map((p, i) =>
          el(
            "li",
            { class: "row" },
            el("span", { class: "grow" }, db(p.typename)),
            el("span", { class: "money" }, money(p.amount)),
            el("button", { class: "danger small", onclick: () => reversePayment(p) }, i === s.payments.length - 1 ? S.reverseLast : S.reverse),
          ),
        ),
      )
    : null;

  ui.amount = el("input", { type: "text", id: "amount", inputmode: "decimal", autocomplete: "off" });
  ui.amount.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      pay(tenders.cash, "Enter", ui.amount);
    }
  });
  const exact = money(Math.max(0, balance));
  ui.reason = el("input", { type: "text", id: "void-reason", placeholder: S.voidReasonPlaceholder, autocomplete: "off" });
  ui.reason.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      voidSale();
    }
  });

  const due = balance < 0;
  const parts = [
    el(
      "div",
      { class: "sale-head" },
      el("h2", { id: "sale-title" }, S.saleTitle(s.ticket, db(s.ticket_word || ""))),
      el("p", { class: "muted who-line", id: "sale-who", title: s.customer ? s.customer.name : null }, cust, " · ", S.fromTablet(db(s.tablet || ""))),
    ),
    driftBox,
    // The lines scroll in their own box: totals and the tender keys stay
    // on screen however long the order is.
    el("div", { class: "lines-box", id: "lines-box" }, lines),
    el(
      "dl",
      { class: "totals" },
      el("dt", {}, S.total),
      el("dd", { class: "money", id: "total" }, money(s.saletotal)),
      el("dt", {}, S.paid),
      el("dd", { class: "money", id: "paid" }, money(s.paid)),
      el("dt", { class: due ? "change" : "due" }, due ? S.changeDue : S.balance),
      el("dd", { class: "money " + (due ? "change" : "due"), id: due ? "change" : "balance" }, money(Math.abs(balance))),
    ),
    payments,
    el(
      "div",
      { class: "tender" },
      el("label", { for: "amount" }, S.amountLabel, " ", el("span", { class: "muted" }, S.exact(exact))),
      el(
        "div",
        { class: "tender-row" },
        ui.amount,
        el(
          "div",
          { class: "tender-buttons" },
          el("button", { id: "pay-cash", onclick: () => pay(tenders.cash, "F2") }, S.cash),
          el("button", { id: "pay-eftpos", onclick: () => pay(tenders.eftpos, "F3") }, S.eftpos),
          el("button", { id: "pay-account", onclick: () => pay(tenders.account, "F4") }, S.account),
        ),
      ),
      el("button", { class: "primary wide", id: "complete", onclick: complete, disabled: balance > 0 }, S.complete),
    ),
    el(
      "div",
      { class: "endings" },
      el("button", { id: "release", onclick: release }, S.release),
      el(
        "div",
        { class: "void" },
        el("label", { for: "void-reason" }, S.voidReasonLabel),
        el("div", { class: "row" }, ui.reason, el("button", { class: "danger", id: "void", onclick: voidSale }, S.void)),
      ),
    ),
  ];
  ui.sale.replaceChildren(...parts.filter(Boolean));
  if (kept) {
    ui.amount.value = kept.amount;
    ui.reason.value = kept.reason;
    if (kept.focus === "amount" || kept.focus === "void-reason") document.getElementById(kept.focus).focus();
  }
}

// --- keys ---

document.addEventListener("keydown", (e) => {
  if (!ui.scan || !document.body.contains(ui.scan)) return;
  const inScan = document.activeElement === ui.scan;
  const typing = !inScan && document.activeElement && ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
  const key = e.key;
  const fkeys = {
    F2: () => pay(tenders.cash, "F2"),
    F3: () => pay(tenders.eftpos, "F3"),
    F4: () => pay(tenders.account, "F4"),
    F6: acceptPrices,
    F7: () => ui.amount && ui.amount.focus(),
    F8: complete,
    F9: () => (ui.reason && ui.reason.value.trim() ? voidSale() : ui.reason && ui.reason.focus()),
    F10: reverseLast,
  };
  if (fkeys[key]) {
    e.preventDefault();
    fkeys[key]();
    return;
  }
  if (key === "Escape") {
    e.preventDefault();
    if (typing) {
      document.activeElement.value = "";
      ui.scan.focus();
      return;
    }
    if (inScan && ui.scan.value) {
      ui.scan.value = "";
      return;
    }
    release();
    return;
  }
  if (key === "/" && !typing && !(inScan && ui.scan.value)) {
    e.preventDefault();
    ui.scan.focus();
  }
});

// A click on nothing in particular gives the scanner its field back.
document.addEventListener("click", () => setTimeout(focusScan, 0));

start();
