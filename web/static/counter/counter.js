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
let heartbeat = 0;
let busy = false;

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
  sale = null;
  localStorage.removeItem(keyStore);
  localStorage.removeItem(nameStore);
  showPairing("");
}

// --- the screen ---

const ui = {};

function showCounter(key) {
  ui.who = el("span", { class: "who", id: "who" }, pairedLabel());
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
    renderList(); // ages move on
  }, heartbeatEvery);
  focusScan();
}

function pairedLabel() {
  const name = localStorage.getItem(nameStore);
  return name ? S.pairedAs(name) : S.paired; // never any part of the key on screen
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

function say(text, kind = "info") {
  ui.message.className = `message ${kind}`;
  ui.message.textContent = text;
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
// same ik once the lane is back, so the lane applies it exactly once.
async function change(a, fields = {}) {
  const packet = { ...fields, ik: newIK() };
  for (let i = 1; ; i++) {
    try {
      return await lane.call(a, packet);
    } catch (e) {
      if (!(e instanceof FD1Error) || e.code !== "offline" || i >= changeTries) throw e;
      say(S.retrying, "warn");
      await online();
    }
  }
}

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

// explain turns a lane error into words for the cashier.
function explain(e, what) {
  if (!(e instanceof FD1Error)) return String(e);
  if (e.code === "claimed") {
    const m = /claimed by "([^"]*)" until (\S+)/.exec(e.message);
    if (m) return S.claimed(m[1], localTime(m[2]));
  }
  if (e.code === "not_found" && what) {
    // A ticket scanned twice: the lane says what became of it.
    if (/ was completed$/.test(e.message)) return S.notFound(what) + " " + S.wasCompleted;
    if (/ was cancelled$/.test(e.message)) return S.notFound(what) + " " + S.wasVoided;
    return S.notFound(what);
  }
  if (e.code === "has_payments") return S.hasPayments;
  return S.error(e.code, e.message);
}

function localTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString();
}

async function act(fn, what) {
  if (busy) return;
  busy = true;
  setBusy(true);
  try {
    await fn();
  } catch (e) {
    say(explain(e, what), "error");
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

// recallArgs reads what was scanned or typed: a ticket number (digits), a
// ticket word (two words joined by "-"), or else the ticket's barcode text.
function recallArgs(text) {
  const t = text.trim();
  if (/^\d{1,4}$/.test(t)) return { ticket: Number(t) };
  if (/^[a-z]+-[a-z]+$/i.test(t)) return { word: t.toLowerCase() };
  return { barcode: t };
}

function recall(text) {
  const t = (text || "").trim();
  if (!t || busy) return; // busy: the scan stays in the field for another Enter
  // The next scan starts on an empty field, whatever this one brings (the
  // message quotes what was scanned).
  ui.scan.value = "";
  act(async () => {
    if (sale) await releaseQuietly();
    const r = first(await change("fd1.presell.recall", { v: recallArgs(t) }));
    quiet();
    setSale(r);
    if (r && r.claim && r.claim.holder && !localStorage.getItem(nameStore)) {
      localStorage.setItem(nameStore, r.claim.holder);
      ui.who.textContent = S.pairedAs(r.claim.holder);
    }
    refreshListSoon();
  }, t);
}

function recallPresell(p) {
  recall(p.ticket_barcode || String(p.ticket));
}

// releaseQuietly gives back the sale on screen before another is recalled,
// unless it already holds payments (then the cashier must finish it).
async function releaseQuietly() {
  if (!sale) return;
  if (sale.payments && sale.payments.length) throw new FD1Error("has_payments", S.hasPayments);
  try {
    await change("fd1.presell.release", { k: sale.physkey });
  } catch (e) {
    if (!(e instanceof FD1Error) || !["conflict", "claim_lost", "not_found"].includes(e.code)) throw e;
  }
  setSale(null);
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

function amountOr(exact) {
  const v = ui.amount ? ui.amount.value.trim() : "";
  if (!v) return exact;
  const n = Number(v.replace(/[$,\s]/g, ""));
  return Number.isFinite(n) && n > 0 ? Math.round(n * 100) / 100 : NaN;
}

function pay(type) {
  if (!sale) return;
  const amount = amountOr(Math.max(0, Number(sale.balance)));
  if (!(amount > 0)) return say(S.error("bad_argument", "type an amount above zero"), "error");
  act(async () => {
    const r = first(await change("fd1.salesbuilder.sale_add_payment", { k: sale.physkey, v: { type, amount } }));
    ui.amount.value = "";
    quiet();
    updateSale(r);
  });
}

function reversePayment(seq) {
  if (!sale) return;
  act(async () => {
    const r = first(await change("fd1.salesbuilder.sale_remove_payment", { k: sale.physkey, v: { seq } }));
    quiet();
    updateSale(r);
  });
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
  act(async () => {
    const t = sale.ticket;
    await change("fd1.presell.release", { k: sale.physkey });
    setSale(null);
    say(S.released(t), "info");
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
    const r = await lane.call("fd1.presell.get_presells", {});
    presells = (r.data && r.data.rows) || [];
    // Oldest first: the customer who has waited longest.
    presells.sort((a, b) => (a.submitted_utc < b.submitted_utc ? -1 : a.submitted_utc > b.submitted_utc ? 1 : a.ticket - b.ticket));
    listFetchedAt = Date.now();
    renderList();
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

function renderList() {
  if (!ui.list) return;
  const since = listFetchedAt ? Math.floor((Date.now() - listFetchedAt) / 1000) : 0;
  const items = presells.map((p) =>
    el(
      "li",
      {},
      el(
        "button",
        {
          class: "presell" + (p.claimed_by ? " held" : ""),
          dataset: { ticket: p.ticket },
          onclick: () => recallPresell(p),
        },
        el("span", { class: "ticket" }, S.ticket(p.ticket)),
        el("span", { class: "word" }, p.ticket_word || ""),
        el("span", { class: "cust" }, p.customer || ""),
        el("span", { class: "meta muted" }, `${S.age(p.age + since)} · ${p.tablet} · ${S.lines(p.lines)}`),
        p.claimed_by ? el("span", { class: "holder" }, S.heldBy(p.claimed_by)) : null,
        el("span", { class: "money" }, money(p.saletotal)),
      ),
    ),
  );
  ui.list.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, S.openEmpty)]));
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
  const cust = s.customer ? S.customer(s.customer.name, Number(s.customer.discount)) : S.noCustomer;
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
          el("td", {}, ln.product ? ln.product.description : `#${ln.pid}`),
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
        el("ul", {}, drift.map((d) => el("li", {}, S.driftLine(d.description, money(d.old_price), money(d.new_price))))),
        el("button", { class: "primary", id: "accept-prices", onclick: acceptPrices }, S.acceptPrices),
      )
    : null;

  const payments = (s.payments || []).length
    ? el(
        "ul",
        { class: "payments", id: "payments" },
        s.payments.map((p) =>
          el(
            "li",
            { class: "row" },
            el("span", { class: "grow" }, p.typename),
            el("span", { class: "money" }, money(p.amount)),
            el("button", { class: "danger small", onclick: () => reversePayment(p.sequence) }, S.reverse),
          ),
        ),
      )
    : null;

  ui.amount = el("input", { type: "text", id: "amount", inputmode: "decimal", autocomplete: "off" });
  ui.amount.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      pay(tenders.cash);
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
      el("h2", { id: "sale-title" }, S.saleTitle(s.ticket, s.ticket_word || "")),
      el("p", { class: "muted" }, `${cust} · ${S.fromTablet(s.tablet || "")}`),
    ),
    driftBox,
    lines,
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
      ui.amount,
      el(
        "div",
        { class: "tender-buttons" },
        el("button", { id: "pay-cash", onclick: () => pay(tenders.cash) }, S.cash),
        el("button", { id: "pay-eftpos", onclick: () => pay(tenders.eftpos) }, S.eftpos),
        el("button", { id: "pay-account", onclick: () => pay(tenders.account) }, S.account),
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
    F2: () => pay(tenders.cash),
    F3: () => pay(tenders.eftpos),
    F4: () => pay(tenders.account),
    F6: acceptPrices,
    F7: () => ui.amount && ui.amount.focus(),
    F8: complete,
    F9: () => (ui.reason && ui.reason.value.trim() ? voidSale() : ui.reason && ui.reason.focus()),
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
