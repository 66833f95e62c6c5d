// tablet.js: staff in the queue build a customer's order and submit it as
// a presell. Every change goes through the offline queue (lib/queue.js)
// with its own ik and is sent once, in order, when the lane is reachable;
// what the screen shows of the sale (lines, prices, total, customer) is
// always the lane's last reply, never computed here.
import { Lane, el, laneURLs, money, newIK } from "../lib/fd1.js";
import { Queue } from "../lib/queue.js";
import S from "./strings.js";

const store = {
  key: "greenlane.tablet.key",
  name: "greenlane.tablet.name",
  sale: "greenlane.tablet.sale",
};

// lanesKey holds the store's lanes (see lanesFromQuery). It is the store's
// setup, not the pairing: unpairing keeps it.
const lanesKey = "greenlane.tablet.lanes";

const $ = (id) => document.getElementById(id);

// db isolates one text from the lane DB (a product, a customer, a key's
// name) on screen: a bidi control in it reorders only itself, and a long
// word wraps instead of widening the page.
const db = (text) => el("bdi", { class: "db" }, text == null ? "" : String(text));

// iso does the same inside a plain string that is kept (a queued change's
// label lives in IndexedDB as text): the value's own bidi controls are
// dropped, so none can close the isolate early, and it is wrapped in
// FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE.
const bidiControls = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
const iso = (text) => "\u2068" + String(text == null ? "" : text).replace(bidiControls, "") + "\u2069";
const queue = new Queue("greenlane-tablet");

const state = {
  lane: null,
  status: "connecting",
  statusMessage: "",
  statusCode: "", // the FD1 code of a login the lane refused for now
  products: [],
  dept: "",
  search: "",
  sale: localStorage.getItem(store.sale) || "", // physkey of the sale being built
  view: null, // the lane's last reply for that sale
  pending: [], // queued changes, oldest first
  customers: null, // last customer search result
  presells: [],
  // openArmed: the order in use on another device whose Open was pressed
  // once; a second press within confirmFor opens it here.
  openArmed: { physkey: "", until: 0 },
  ticket: null, // the parked sale whose ticket is shown
  weigh: null, // {product} or {line}: the grams dialog
  camera: null, // {stream, video, timer}
  // steps: "sale:seqnce" → {qty, ik} for a line whose last +, − or Remove
  // tap has not been answered yet: the quantity it asked for (0: removal).
  // The next tap counts from it, so quick taps each count, and a line
  // being removed takes no more taps.
  steps: new Map(),
  submitting: "", // the ik of a Submit not answered yet: Submit waits for it
  // held: sale → {label, e}, the refusal that stopped that sale's changes
  // (see holds). They stay queued, unsent, until Retry or the next login.
  held: new Map(),
  // repair: the pairing form is shown for a key the lane refused; unlike
  // Unpair it keeps the queue, so the order waits for the new key.
  repair: false,
  // refusedFor: the lane's last "retry later" answers in a row (how many,
  // and the last), while the changes wait to be sent again: after a few,
  // an answer that says why (an unavailable with a cause) is shown.
  refusedFor: { n: 0, e: null },
  // elsewhere: this page stood aside for the same tablet's page in another
  // tab or window (see "one page at a time").
  elsewhere: false,
};

// --- pairing ---

function keyFromFragment() {
  const m = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (!m) return;
  localStorage.setItem(store.key, decodeURIComponent(m[1]));
  localStorage.removeItem(store.name);
  // The key must not stay in the address bar, the history or a bookmark.
  history.replaceState(null, "", location.pathname + location.search);
  persist();
}

// lanesFromQuery remembers the lanes the address names: /tablet/?lanes=
// http://lane1:3490,http://lane2:3490 makes the tablet use those lanes of
// one store database, moving to the next when its socket drops; an empty
// lanes= forgets them (back to the lane that served the page alone).
function lanesFromQuery() {
  const q = new URLSearchParams(location.search);
  if (!q.has("lanes")) return;
  const list = q.get("lanes").trim();
  if (list) localStorage.setItem(lanesKey, list);
  else localStorage.removeItem(lanesKey);
}

function persist() {
  // Ask the browser not to evict the queue and the key under storage
  // pressure; a tablet that loses them loses orders.
  if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(() => {});
}

function pair(key) {
  key = key.trim();
  if (!key) return;
  state.repair = false;
  localStorage.setItem(store.key, key);
  localStorage.removeItem(store.name);
  persist();
  start();
}

async function unpair() {
  if (!confirm(S.unpairConfirm(state.pending.length))) return;
  if (state.lane) state.lane.stop();
  state.lane = null;
  await queue.clear();
  state.pending = [];
  for (const k of Object.values(store)) localStorage.removeItem(k);
  state.sale = "";
  state.view = null;
  render();
}

// --- one page at a time ---

// Two tabs or windows of this page share the pairing, the current sale and
// the queue of changes: both would send the queue, and each would start
// sales the other does not show, so an order could seem to vanish. The
// page opened last, or taken back with "Use here", is the one that works;
// any other stands aside and says where the order is. (BroadcastChannel
// reaches the same page in other tabs; it needs no https, unlike locks.)
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("greenlane-tablet") : null;
const tabID = newIK();

if (tabs) {
  tabs.onmessage = (e) => {
    if (e.data && e.data.took && e.data.took !== tabID && !state.elsewhere) standAside();
  };
}

// claimTablet tells any other page of this tablet to stand aside.
function claimTablet() {
  if (tabs) tabs.postMessage({ took: tabID });
}

function standAside() {
  state.elsewhere = true;
  if (state.lane) state.lane.stop();
  state.lane = null;
  stopCamera();
  // Its Retry and Discard would act on the other page's queue.
  state.held.clear();
  render();
}

// useHere takes the tablet back: the other page stands aside, and this one
// picks up the order and the queue as that page left them.
async function useHere() {
  claimTablet();
  state.elsewhere = false;
  state.sale = localStorage.getItem(store.sale) || "";
  state.view = null;
  state.ticket = null;
  state.held.clear();
  await loadPending();
  start();
}

// --- the connection ---

function start() {
  if (state.elsewhere) return;
  const key = localStorage.getItem(store.key);
  if (!key) {
    render();
    return;
  }
  if (state.lane) state.lane.stop();
  const lane = new Lane({ key, purpose: "presell", urls: laneURLs(localStorage.getItem(lanesKey), "presell") });
  state.lane = lane;
  lane.addEventListener("status", (e) => {
    state.status = e.detail.state;
    state.statusMessage = e.detail.message;
    state.statusCode = e.detail.code || "";
    renderBanner();
    renderButtons();
  });
  lane.addEventListener("login", onLogin);
  lane.firehose("presell", {}, refreshPresellsSoon);
  lane.start();
  render();
}

async function onLogin() {
  const lane = state.lane;
  // A new login is a new chance for what a refusal held: it is sent again
  // with the same iks, so what the lane already applied is not applied
  // twice, and a refusal that stands is shown again in its place.
  state.held.clear();
  flush();
  try {
    const r = await lane.call("fd1.products.get_products_list", {
      qo: { pid: true, description: true, price: true, plu: true, department: true, measurement: true, barcodes: true, active: true },
    });
    state.products = (r.data.rows || []).filter((p) => p.active !== false);
    renderCatalogue();
  } catch (e) {
    showError(S.title, e);
  }
  await reloadSale();
  refreshPresells();
}

// reloadSale shows the current sale as the lane has it (after a reload or
// a reconnect), unless changes to it are still waiting to be sent.
async function reloadSale() {
  const k = state.sale;
  if (!k || !state.lane || !state.lane.online) return;
  if (state.pending.some((c) => c.sale === k)) return;
  // A tap made while the fetch is out can move the order to a new sale
  // (see rehome), or start one: a reply about the sale the page had
  // then must not clear the order it has now.
  const current = async () => state.sale === k && !(await queue.all()).some((c) => c.sale === k);
  try {
    const r = await state.lane.call("salesbuilder.sale_fetch", { k });
    if (!(await current())) return;
    const sale = saleOf(r);
    if (sale && sale.phase === 5 && sale.ticket != null) {
      showTicket(sale);
    } else if (sale && sale.phase === 0) {
      setView(sale);
    } else {
      newSale();
    }
  } catch (e) {
    if (!(await current())) return;
    if (e.code === "not_found") newSale();
    else if (e.code !== "offline") showError(S.title, e);
  }
}

// --- the queue ---

// change queues one request for the current sale (creating the sale first,
// under a physkey chosen here, when there is none) and sends what waits.
// Taps are queued one after the other: two quick taps (or a scanner's two
// codes) start their writes before the first is on disk, and must still
// reach the queue, and so the lane, in the order they were made.
let queueing = Promise.resolve();
function change(a, fields, label) {
  queueing = queueing.then(() => queueChange(a, fields, label)).catch((e) => showError(label, { code: "storage", message: String(e) }));
  return queueing;
}

async function queueChange(a, fields, label) {
  if (!state.sale) {
    state.sale = newIK();
    localStorage.setItem(store.sale, state.sale);
    await queue.add({ a: "salesbuilder.sale_create", v: { physkey: state.sale }, ik: newIK(), sale: state.sale, label: S.create });
  }
  await queue.add({ a, k: state.sale, ik: newIK(), ...fields, sale: state.sale, label });
  await loadPending();
  flush();
}

async function loadPending() {
  state.pending = await queue.all();
  renderBanner();
  renderOrder();
}

// retryLater are the answers that say nothing about the change itself:
// the lane was unreachable, shutting down or busy. The change stays queued
// with its ik; any other error is the lane's verdict on it.
const retryLater = new Set(["offline", "unavailable", "rate_limited"]);

let flushing = false;
// ticketWanted: a change to the current sale was refused because the sale
// was submitted; flush shows its ticket once it is done.
let ticketWanted = false;
let retryTimer = 0;

// holds reports whether a refusal of c must stop the changes of its sale
// instead of dropping c: a refused create leaves a sale that does not
// exist, so every change queued behind it would fail too (the order would
// be lost tap by tap); a refused key says nothing about the change; and a
// fault on the lane (internal) leaves it unknown whether the change was
// made, so it is kept with its ik rather than dropped. The changes wait,
// kept, until the staff member taps Retry (which sends the same iks).
function holds(c, e) {
  return c.a === "salesbuilder.sale_create" || keyRefused.has(e.code) || e.code === "internal";
}

// keyRefused are the answers that refuse the tablet's key, not the change.
const keyRefused = new Set(["login_required", "login_failed", "forbidden"]);

// flush sends the waiting changes one at a time, oldest first within each
// sale. A change leaves the queue only when the lane has answered it: a
// dropped link keeps it (and its ik) for the next try; an error reply drops
// it and says so, unless it holds its sale (see holds): then that sale's
// changes stay queued and the others still go.
async function flush() {
  if (flushing) return;
  flushing = true;
  clearTimeout(retryTimer);
  try {
    for (;;) {
      const lane = state.lane;
      if (!lane || !lane.online) break;
      const c = (await queue.all()).find((x) => !state.held.has(x.sale));
      if (!c) break;
      let reply;
      try {
        const fields = { ik: c.ik };
        if (c.k) fields.k = c.k;
        if (c.v) fields.v = c.v;
        reply = await lane.call(c.a, fields);
      } catch (e) {
        if (retryLater.has(e.code)) {
          state.refusedFor = { n: state.refusedFor.n + 1, e };
          retryTimer = setTimeout(flush, 2000);
          break;
        }
        state.refusedFor = { n: 0, e: null };
        if (holds(c, e)) {
          state.held.set(c.sale, { label: c.label, e });
          renderHeld();
          renderOrder();
          continue;
        }
        if (gone(e)) {
          // In turn with the taps being queued: one still on its way to
          // the old sale would be left behind, to start a second order.
          queueing = queueing.then(() => rehome(c, e)).catch((err) => showError(c.label, { code: "storage", message: String(err) }));
          await queueing;
          continue;
        }
        await queue.remove(c.id);
        settled(c);
        showError(c.label, e);
        // Submitted meanwhile (this key's other device did it): once the
        // taps made here are all answered, the page shows its ticket
        // rather than an order that takes no more changes.
        if (submittedElsewhere(e) && c.sale === state.sale) ticketWanted = true;
        continue;
      }
      state.refusedFor = { n: 0, e: null };
      await queue.remove(c.id);
      applied(c, reply);
    }
  } finally {
    flushing = false;
    await loadPending();
    if (!state.pending.length) refreshPresellsSoon();
    if (ticketWanted) {
      ticketWanted = false;
      await reloadSale();
    }
  }
}

// submittedElsewhere reports whether a refusal says the change's sale was
// submitted as a presell, here or on another device with this key.
function submittedElsewhere(e) {
  return e.code === "conflict" && /submitted as presell ticket \d+/.test(e.message || "");
}

// gone reports whether a refusal says the change's sale takes no more
// changes from this tablet: voided or completed at the counter (or by the
// sweeper), or started under a key this tablet no longer has. Every change
// queued behind it would be refused the same way.
function gone(e) {
  const m = e.message || "";
  return (
    (e.code === "not_found" && /^no sale with physkey |no longer exists/.test(m)) ||
    (e.code === "conflict" && (/ was cancelled$/.test(m) || / is completed /.test(m))) ||
    (e.code === "claimed" && / belongs to /.test(m))
  );
}

// movable are the changes that mean the same on another sale; a line's
// edit or removal, or a Submit, names the old sale's line or state.
const movable = new Set(["salesbuilder.sale_add_product", "salesbuilder.sale_set_customer"]);

// rehome keeps the taps made for a sale that is gone (see gone): c and the
// changes queued behind it that can move go to a new sale, created first,
// each with a new ik (none of them was applied: c was refused and the rest
// were never sent). The move is one queue transaction, so a page closed
// halfway neither loses the taps nor sends them twice. The refusal is
// shown once, for all of them.
async function rehome(c, e) {
  const old = c.sale;
  const rest = (await queue.all()).filter((x) => x.sale === old);
  // A product tap that became one more on a line moves as the add it was.
  const keep = rest.filter((x) => movable.has(x.a) || x.tap);
  const sale = newIK();
  const adds = keep.length
    ? [
        { a: "salesbuilder.sale_create", v: { physkey: sale }, ik: newIK(), sale, label: S.create },
        ...keep.map((x) =>
          x.tap
            ? { a: "salesbuilder.sale_add_product", k: sale, v: { pid: x.tap.pid }, ik: newIK(), sale, label: x.label }
            : { a: x.a, k: sale, v: x.v, ik: newIK(), sale, label: x.label }
        ),
      ]
    : [];
  await queue.replace(
    rest.map((x) => x.id),
    adds
  );
  rest.forEach(settled);
  // The moved taps become the order on screen, unless the page has moved
  // on to another order since (then they wait in the open presells list).
  if (old === state.sale || !state.sale) {
    newSale();
    if (keep.length) {
      state.sale = sale;
      localStorage.setItem(store.sale, sale);
    }
  }
  showError(c.label, e, keep.length ? S.movedNote : "");
  await loadPending();
}

// discardHeld drops a held sale's waiting changes once the staff member
// confirms (the customer left, or the order is not wanted): without it a
// held order could only be sent or lost with everything else by Unpair.
// What the lane already has of the sale stays there, for a counter to void.
async function discardHeld(sale) {
  const mine = (await queue.all()).filter((c) => c.sale === sale);
  if (!confirm(S.discardConfirm(mine.length))) return;
  await queue.replace(
    mine.map((c) => c.id),
    []
  );
  mine.forEach(settled);
  state.held.delete(sale);
  renderHeld();
  if (sale === state.sale) newSale();
  await loadPending();
  flush();
}

// retryHeld sends a held sale's changes again, in order, from the one
// that was refused (with its own ik: a change the lane applied is not
// applied twice).
function retryHeld(sale) {
  state.held.delete(sale);
  renderHeld();
  renderOrder();
  loadPending();
  flush();
}

// applied shows the lane's answer to one change.
function applied(c, reply) {
  settled(c);
  const sale = saleOf(reply);
  if (!sale) return;
  if (sale.tablet) {
    localStorage.setItem(store.name, sale.tablet);
    renderPaired();
  }
  if (c.a === "salesbuilder.sale_park" && sale.ticket != null) {
    showTicket(sale);
    return;
  }
  if (sale.physkey === state.sale) setView(sale);
}

// settled forgets what a change held back while it waited: the tap that
// asked for a quantity, or the Submit.
function settled(c) {
  const v = c.v || {};
  const key = `${c.sale}:${v.seqnce}`;
  const step = state.steps.get(key);
  if (step && step.ik === c.ik) state.steps.delete(key);
  if (state.submitting === c.ik) state.submitting = "";
}

function saleOf(reply) {
  const d = reply && reply.data;
  if (!d) return null;
  if (Array.isArray(d.rows)) return d.rows[0] || null;
  return d.physkey ? d : null;
}

function setView(sale) {
  state.view = sale;
  renderOrder();
}

function newSale() {
  state.sale = "";
  state.view = null;
  state.ticket = null;
  state.customers = null;
  state.submitting = "";
  // What went wrong with the last customer's order is not news for the next,
  // nor is the customer looked up for it.
  $("errors").replaceChildren();
  const custQ = $("cust-q");
  if (custQ) custQ.value = "";
  localStorage.removeItem(store.sale);
  render();
}

// --- actions ---

function tapProduct(p) {
  if (p.measurement === 1) {
    openWeigh({ product: p });
    return;
  }
  // Another of the product on the order's last line is one more on that
  // line: five taps on Flat White make "Flat White × 5", not five lines of
  // one, which is how the counter and the display read best. The change
  // keeps the tap it was (tap), so that it moves to a new order as an add
  // if this one is gone (rehome).
  const v = state.view;
  const last = v && v.physkey === state.sale && v.lines.length ? v.lines[v.lines.length - 1] : null;
  if (last && last.pid === p.pid && last.measurement !== 1 && lineQty(last) > 0 && !state.held.has(state.sale)) {
    setLine(last, lineQty(last) + 1, S.add(iso(p.description)), { tap: { pid: p.pid } });
    return;
  }
  change("salesbuilder.sale_add_product", { v: { pid: p.pid } }, S.add(iso(p.description)));
}

function scan(code) {
  code = code.trim();
  if (!code) return;
  change("salesbuilder.sale_add_product", { v: { barcode: code } }, S.addBarcode(iso(code)));
}

// lineQty is the quantity a line will have once the taps on it are
// answered: the last one asked for (this page's, or one queued before a
// reload), else the lane's. 0: its removal is on the way.
function lineQty(line) {
  const step = state.steps.get(`${state.sale}:${line.seqnce}`);
  if (step) return step.qty;
  const queued = state.pending.filter(
    (c) => c.sale === state.sale && c.v && c.v.seqnce === line.seqnce && (c.a === "salesbuilder.sale_edit_line" || c.a === "salesbuilder.sale_remove_line")
  );
  const last = queued[queued.length - 1];
  if (last) return last.a === "salesbuilder.sale_remove_line" ? 0 : last.v.qty;
  return line.qty;
}

// setLine queues a line's new quantity (0 removes it). Each change names
// an absolute quantity counted from lineQty, noted at once (before the
// queue's write), so a second quick tap counts from the first.
function setLine(line, qty, label, extra = {}) {
  if (lineQty(line) === 0) return; // already being removed
  const ik = newIK();
  state.steps.set(`${state.sale}:${line.seqnce}`, { qty, ik });
  renderOrder();
  if (qty < 1) change("salesbuilder.sale_remove_line", { ik, v: { seqnce: line.seqnce } }, label);
  else change("salesbuilder.sale_edit_line", { ik, v: { seqnce: line.seqnce, qty }, ...extra }, label);
}

// A line that leaves the order moves the lines below it up, under a finger
// that may be coming down for a second tap: a tap on a line's buttons that
// soon after is taken as meant for the line that was there, and dropped.
// (A quick double tap on Remove removed the next line as well.)
const settleAfterShift = 500; // ms
let linesShiftedAt = 0;
let shownLines = []; // the seqnces of the lines last drawn, in order

function settling() {
  return Date.now() - linesShiftedAt < settleAfterShift;
}

function stepLine(line, delta) {
  if (settling()) return;
  const qty = lineQty(line) + delta;
  const d = iso(line.product.description);
  setLine(line, Math.max(0, qty), qty < 1 ? S.removeLine(d) : S.edit(d));
}

function removeLine(line) {
  if (settling()) return;
  setLine(line, 0, S.removeLine(iso(line.product.description)));
}

// fold is text as a search compares it: lower case, without accents or
// apostrophes, so "zoe" finds Zoë, "pomare" Pōmare and "oconnor" O'Connor
// (a tablet's keyboard makes macrons hard to type).
function fold(text) {
  return text.normalize("NFD").replace(/\p{M}/gu, "").replace(/['’‘`]/g, "").toLowerCase();
}

async function findCustomers(text) {
  text = fold(text.trim());
  const lane = state.lane;
  if (!lane || !lane.online) {
    state.customers = { note: S.customerNeedsLane, rows: [] };
    renderCustomer();
    return;
  }
  try {
    // The lane's filters compare whole values; "part of a name" is matched
    // here, over the (capped) list the lane sends.
    const r = await lane.call("fd1.customers.get_customers", { qo: { cid: true, name: true, phone: true, discount: true } });
    // A phone number matches however it is written: spaces, dashes,
    // dots and brackets are left out on both sides.
    const digits = (s) => String(s || "").replace(/[\s\-.()]/g, "");
    const rows = (r.data.rows || []).filter(
      (c) => !text || fold(String(c.name || "")).includes(text) || (digits(text) !== "" && digits(c.phone).includes(digits(text)))
    );
    state.customers = { note: rows.length ? "" : S.customerNoMatch, rows: rows.slice(0, 20) };
  } catch (e) {
    showError(S.customer, e);
  }
  renderCustomer();
}

function setCustomer(c) {
  state.customers = null;
  change("salesbuilder.sale_set_customer", { v: { cid: c.cid } }, S.setCustomer(iso(c.name)));
}

// submit parks the sale once: from the tap until the lane answers, Submit
// is disabled and further taps do nothing (a double tap is one Submit, and
// no "already parked" error for the second).
function submit() {
  // A held order's Submit is its Retry: it sends what was kept, in order.
  if (state.held.has(state.sale)) {
    if (state.lane && state.lane.online) retryHeld(state.sale);
    return;
  }
  if (state.submitting || !state.sale || !canEditLines() || !state.view || !state.view.lines.length) return;
  state.submitting = newIK();
  renderButtons();
  change("salesbuilder.sale_park", { ik: state.submitting }, S.park);
}

// Submit, a new weight and Remove wait until the lane's last reply is
// current: nothing waiting (+ and − count from lineQty, and may be tapped
// while their changes wait). A held order's changes wait for Retry, not
// for the lane: they do not stop another order from being submitted.
function canEditLines() {
  return state.lane && state.lane.online && !state.pending.some((c) => c.sale === state.sale || !state.held.has(c.sale));
}

// --- presells ---

let presellTimer = 0;
function refreshPresellsSoon() {
  clearTimeout(presellTimer);
  presellTimer = setTimeout(refreshPresells, 300);
}

async function refreshPresells() {
  const lane = state.lane;
  if (!lane || !lane.online) return;
  try {
    // A presell key sees only its own sales: qk "all" lists those this
    // tablet holds (being built, or submitted and waiting for the counter);
    // get_presells adds those it submitted that a counter has taken or set
    // back in the queue, which the tablet no longer holds but are still
    // its customers' orders.
    const [held, submitted] = await Promise.all([
      lane.call("salesbuilder.get_sale", { qk: "all" }),
      // A lane that does not answer it (an older one) leaves the list as it was.
      lane.call("fd1.presell.get_presells", { v: { oldest: true } }).catch(() => null),
    ]);
    const rows = held.data.rows || [];
    const mine = new Set(rows.map((p) => p.physkey));
    for (const p of (submitted && submitted.data && submitted.data.rows) || []) {
      if (!mine.has(p.physkey)) rows.push({ ...p, atCounter: true });
    }
    state.presells = rows;
  } catch (e) {
    if (e.code !== "offline") showError(S.presells, e);
  }
  renderPresells();
}

async function resume(p) {
  if (p.physkey === state.sale) return;
  // Another device of this key works on it (a second tablet paired with the
  // same key, another tab): opened here as well, two devices would ring up
  // one order. The first press says so; a second one opens it.
  if (p.in_use_elsewhere && !(state.openArmed.physkey === p.physkey && Date.now() < state.openArmed.until)) {
    state.openArmed = { physkey: p.physkey, until: Date.now() + confirmFor };
    renderPresells();
    setTimeout(renderPresells, confirmFor + 50);
    return;
  }
  state.openArmed = { physkey: "", until: 0 };
  state.sale = p.physkey;
  localStorage.setItem(store.sale, p.physkey);
  state.view = null;
  state.submitting = "";
  render();
  await reloadSale();
}

// --- rendering ---

function render() {
  renderPaired();
  renderBanner();
  renderHeld();
  const app = $("app");
  const screen = state.elsewhere ? "elsewhere" : !localStorage.getItem(store.key) || state.repair ? "pair" : state.ticket ? "ticket" : "sell";
  // The sell screen, once shown, stays and is brought up to date: built
  // anew (a new order, a login) it would drop a tap or a scanner's digits
  // that land meanwhile.
  if (screen !== "sell" || app.dataset.screen !== "sell") {
    app.replaceChildren();
    app.dataset.screen = screen;
    if (screen === "elsewhere") {
      app.append(elsewhereScreen());
      return;
    }
    if (screen === "pair") {
      app.append(pairScreen());
      return;
    }
    if (screen === "ticket") {
      app.append(ticketScreen(state.ticket));
      return;
    }
    app.append(sellScreen());
  }
  renderCatalogue();
  renderOrder();
  renderPresells();
  if (state.weigh && !$("weigh")) app.append(weighDialog());
}

function renderPaired() {
  const paired = !!localStorage.getItem(store.key);
  const name = localStorage.getItem(store.name);
  $("paired-as").replaceChildren(...(paired ? (name ? S.pairedAs(db(name)) : [S.pairedNoName]) : []));
  // Not while another page has the tablet: unpairing would drop its queue.
  $("unpair").classList.toggle("hidden", !paired || state.elsewhere);
}

function renderBanner() {
  const b = $("banner");
  const n = state.pending.length;
  let text = "";
  let cls = "offline";
  if (!localStorage.getItem(store.key) || state.elsewhere) text = "";
  else if (state.status === "refused") {
    text = S.refused(state.statusMessage);
    cls = "error";
  } else if (state.status === "offline" && state.statusCode === "limit_reached") {
    // The lane is up but will not take one more socket for this key: a
    // second tab, or another device paired with the same key.
    text = S.keyBusy(n);
    cls = "error";
  } else if (state.status !== "online") text = n ? S.offline(n) : state.status === "connecting" ? S.connecting : S.offlineNone;
  else if (n && state.pending.every((c) => state.held.has(c.sale))) text = S.held(n);
  else if (n && laneSaysWhy()) {
    text = S.refusedWhy(n, laneSaysWhy());
    cls = "error";
  } else if (n && Date.now() - oldestQueued() >= slowSend) text = S.sending(n);
  else {
    // Online: a change on its way is news only once it is slow to land.
    text = S.online;
    cls = "ok";
    clearTimeout(bannerTimer);
    if (n) bannerTimer = setTimeout(renderBanner, slowSend - (Date.now() - oldestQueued()));
  }
  b.textContent = text;
  if (state.status === "refused" && localStorage.getItem(store.key) && !state.repair) {
    b.append(
      " ",
      el(
        "button",
        {
          type: "button",
          id: "repair",
          onclick: () => {
            state.repair = true;
            render();
          },
        },
        S.pairAgain
      )
    );
  }
  // Paired, the strip always holds a line: were it to come and go with
  // each change sent, every tap would move the products under the next.
  b.className = "banner " + cls + (text ? "" : " hidden");
}

// laneSaysWhy is the lane's reason for refusing the changes waiting, once
// it has refused them that way refusalsBeforeNotice times in a row and the
// reason is one for people (an unavailable with a cause: its clock, its
// disk, the store database), in the tablet's few words; "" otherwise, as for a plain busy lane,
// which the "sending" line covers. The changes keep being retried.
function laneSaysWhy() {
  const { n, e } = state.refusedFor;
  if (n < refusalsBeforeNotice || !e || e.code !== "unavailable" || !e.cause) return "";
  return S.causes[e.cause] || S.causeOther;
}

const refusalsBeforeNotice = 2;

// slowSend is how long a change may take to reach the lane before the
// banner says it is still being sent, in ms.
const slowSend = 1000;
let bannerTimer = 0;

// oldestQueued is when the change waiting longest was queued (ms).
function oldestQueued() {
  return state.pending.reduce((t, c) => Math.min(t, c.queued || 0), Date.now());
}

// showError shows a refused change as a sentence for the server
// (strings.js, S.errors), or the lane's own message when there is none: no
// raw error code on screen.
function showError(what, e, note = "") {
  const f = S.errors[e.code];
  const said = (f && f({ message: e.message || "", cause: e.cause, db })) || db(e.message);
  const li = el("li", { class: "banner error", dataset: { code: e.code || "" } }, el("span", { class: "grow" }, S.failed(what, said), note ? " " + note : ""));
  li.append(el("button", { type: "button", onclick: () => li.remove() }, S.dismiss));
  const box = $("errors");
  // The newest few only, each said once: a run of refusals must not bury
  // the screen.
  for (const old of box.querySelectorAll("li:not([data-held])")) if (old.firstChild.textContent === li.firstChild.textContent) old.remove();
  box.append(li);
  const refusals = box.querySelectorAll("li:not([data-held])");
  for (const old of [...refusals].slice(0, Math.max(refusals.length - shownRefusals(), 0))) old.remove();
  // It covers the products below it: once read, it goes by itself. (A held
  // order's notice stays: it waits for Retry or Discard.)
  setTimeout(() => li.remove(), refusalShownFor);
}

// shownRefusals is how many refused-change notices stand at once, and
// refusalShownFor how long each stands (ms): time to read it, and to look
// up from the customer first. On a phone's width three cover the
// products: the newest one alone stands there.
const shownRefusals = () => (window.matchMedia("(max-width: 600px)").matches ? 1 : 3);
const refusalShownFor = 20000;

// renderHeld shows one notice per held sale, in place of the one before:
// a refusal that stands after a Retry is not shown twice.
function renderHeld() {
  const box = $("errors");
  for (const li of box.querySelectorAll("li[data-held]")) if (!state.held.has(li.dataset.held)) li.remove();
  for (const [sale, h] of state.held) {
    const f = S.errors[h.e.code];
    const said = (f && f({ message: h.e.message || "", cause: h.e.cause, db })) || db(h.e.message);
    const li = el(
      "li",
      { class: "banner error held", dataset: { held: sale, code: h.e.code || "" } },
      el("span", { class: "grow" }, S.failed(h.label, said), " ", S.heldNote),
      el("button", { type: "button", class: "retry primary", onclick: () => retryHeld(sale) }, S.retry),
      el("button", { type: "button", class: "discard", onclick: () => discardHeld(sale) }, S.discard)
    );
    const old = [...box.querySelectorAll("li[data-held]")].find((x) => x.dataset.held === sale);
    if (old) old.replaceWith(li);
    else box.prepend(li);
  }
}

function pairScreen() {
  const input = el("input", { id: "pair-key", type: "password", autocomplete: "off", spellcheck: "false" });
  const form = el(
    "form",
    { class: "card pair", onsubmit: (e) => (e.preventDefault(), pair(input.value)) },
    el("h1", {}, S.pairHeading),
    el("p", { class: "muted" }, S.pairHelp),
    el("label", { for: "pair-key" }, S.pairLabel),
    input,
    el("button", { id: "pair-go", class: "primary", type: "submit" }, S.pairButton)
  );
  return form;
}

function elsewhereScreen() {
  return el(
    "div",
    { class: "card pair", id: "elsewhere" },
    el("h1", {}, S.elsewhereHeading),
    el("p", {}, S.elsewhereHelp),
    el("button", { id: "use-here", class: "primary", type: "button", onclick: useHere }, S.useHere)
  );
}

function sellScreen() {
  const search = el("input", { id: "search", type: "search", value: state.search, autocomplete: "off" });
  search.addEventListener("input", () => {
    state.search = search.value;
    renderGrid();
  });
  const scanField = el("input", { id: "scan", type: "text", inputmode: "numeric", autocomplete: "off", placeholder: S.scanPlaceholder });
  scanField.addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    scan(scanField.value);
    scanField.value = "";
  });
  const custQ = el("input", { id: "cust-q", type: "search", autocomplete: "off" });
  custQ.addEventListener("keydown", (e) => {
    if (e.key === "Enter") (e.preventDefault(), findCustomers(custQ.value));
  });
  return el(
    "div",
    { class: "sell" },
    el(
      "section",
      { class: "catalogue", "aria-label": "Products" },
      el(
        "div",
        { class: "finders" },
        el("div", {}, el("label", { for: "search" }, S.searchLabel), search),
        el("div", {}, el("label", { for: "scan" }, S.scanLabel), scanField),
        el(
          "div",
          { class: "camera-row" },
          el("button", { id: "camera", type: "button", onclick: toggleCamera }, state.camera ? S.cameraStop : S.camera),
          el("span", { id: "camera-note", class: "muted" })
        ),
        el("div", { id: "camera-view" })
      ),
      el("div", { id: "depts", class: "depts", role: "group", "aria-label": "Departments" }),
      el("div", { id: "grid", class: "grid" })
    ),
    // On a phone the order is below the products: this bar keeps its
    // total in sight and jumps to it.
    el("a", { id: "summary", class: "summary", href: "#order" }, el("span", { id: "summary-count" }), el("strong", { id: "summary-total", class: "money" })),
    el(
      "section",
      { id: "order", class: "order card", "aria-label": S.order },
      el("h2", {}, S.order),
      el(
        "div",
        { class: "customer" },
        el("div", { id: "customer" }),
        el("label", { for: "cust-q" }, S.customerLabel),
        el("div", { class: "row" }, custQ, el("button", { id: "cust-find", type: "button", onclick: () => findCustomers(custQ.value) }, S.customerFind)),
        el("div", { id: "cust-results", class: "cust-results" })
      ),
      el("ul", { id: "lines", class: "lines" }),
      el("ul", { id: "pending", class: "pending" }),
      el("div", { class: "total row" }, el("span", { class: "grow" }, S.total), el("strong", { id: "total", class: "money" })),
      el("button", { id: "submit", class: "primary submit", type: "button", onclick: submit }, S.submit)
    ),
    el("section", { class: "presells card", "aria-label": S.presells }, el("h2", {}, S.presells), el("ul", { id: "presells" }))
  );
}

// unchanged reports whether node already shows what sig describes, and
// remembers sig for it. The catalogue and the customer are drawn again on
// every login, render and reply; rebuilding buttons that look the same
// would drop a tap that lands while they are swapped.
const drawn = new WeakMap();
function unchanged(node, sig) {
  if (drawn.get(node) === sig) return true;
  drawn.set(node, sig);
  return false;
}

function renderCatalogue() {
  const depts = $("depts");
  if (!depts) return;
  const names = [...new Set(state.products.map((p) => p.department || ""))];
  if (unchanged(depts, JSON.stringify([names, state.dept]))) {
    renderGrid();
    return;
  }
  depts.replaceChildren(
    ...["", ...names].map((d) =>
      el(
        "button",
        {
          type: "button",
          class: "dept",
          dataset: { dept: d },
          "aria-pressed": state.dept === d ? "true" : "false",
          onclick: () => {
            state.dept = d;
            renderCatalogue();
          },
        },
        d ? db(d) : S.allDepartments
      )
    )
  );
  fadeDepts();
  renderGrid();
}

// fadeDepts fades the department strip's right edge while more of it lies
// beyond (see tablet.css), on each draw, scroll and resize.
function fadeDepts() {
  const d = $("depts");
  if (!d) return;
  d.classList.toggle("more", d.scrollLeft + d.clientWidth < d.scrollWidth - 1);
  if (!d.dataset.fades) {
    d.dataset.fades = "1";
    d.addEventListener("scroll", fadeDepts, { passive: true });
    window.addEventListener("resize", fadeDepts);
  }
}

function renderGrid() {
  const grid = $("grid");
  if (!grid) return;
  const q = fold(state.search.trim());
  const shown = state.products.filter(
    (p) =>
      (q ? fold(String(p.description)).includes(q) || String(p.plu || "").toLowerCase() === q || String(p.plu || "").toLowerCase().startsWith(q) : true) &&
      (q || !state.dept || p.department === state.dept)
  );
  if (unchanged(grid, JSON.stringify([shown, state.products.length > 0]))) return;
  grid.replaceChildren(
    ...shown.map((p) =>
      el(
        "button",
        { type: "button", class: "product", dataset: { pid: p.pid, plu: p.plu || "" }, onclick: () => tapProduct(p) },
        el("span", { class: "name" }, db(p.description)),
        el("span", { class: "price money" }, money(p.price) + (p.measurement === 1 ? " /kg" : ""))
      )
    )
  );
  if (!shown.length && state.products.length) grid.append(el("p", { class: "muted" }, S.noProducts));
}

function renderOrder() {
  const lines = $("lines");
  if (!lines) return;
  const v = state.view;
  const editable = canEditLines();
  lines.replaceChildren(
    ...(v ? v.lines : []).map((l) => {
      const d = iso(l.product.description);
      const weighed = l.measurement === 1;
      const qty = lineQty(l);
      const going = qty === 0; // its removal is on the way
      const controls = weighed
        ? [el("button", { type: "button", class: "weigh", disabled: !editable || going, onclick: () => settling() || openWeigh({ line: l }) }, S.weigh)]
        : [
            el("button", { type: "button", class: "dec", "aria-label": S.less(d), disabled: going, onclick: () => stepLine(l, -1) }, "−"),
            el("span", { class: "qty" }, String(going ? l.qty : qty)),
            el("button", { type: "button", class: "inc", "aria-label": S.more(d), disabled: going, onclick: () => stepLine(l, 1) }, "+"),
          ];
      return el(
        "li",
        { class: "line", dataset: { seqnce: l.seqnce, pid: l.pid } },
        el(
          "div",
          { class: "line-head" },
          el("span", { class: "grow desc" }, db(l.product.description)),
          el("span", { class: "money line-total" }, money(l.totalprice))
        ),
        el(
          "div",
          { class: "line-tools row" },
          el("span", { class: "grow muted" }, weighed ? S.grams(l.qty) : S.qty(l.qty), l.pricecause ? " · " + S.discounted : ""),
          ...controls,
          el("button", { type: "button", class: "remove danger", "aria-label": S.removeLabel(d), disabled: !editable || going, onclick: () => removeLine(l) }, S.remove)
        )
      );
    })
  );
  // A line gone from above another: the ones below it moved up.
  const now = (v ? v.lines : []).map((l) => l.seqnce);
  if (now.some((q, i) => shownLines.indexOf(q) > i)) linesShiftedAt = Date.now();
  shownLines = now;
  const mine = state.pending.filter((c) => c.sale === state.sale && state.sale);
  const kept = state.held.has(state.sale) ? S.kept : S.waiting;
  $("pending").replaceChildren(...mine.map((c) => el("li", { class: "muted" }, c.label, " — ", kept)));
  if (!(v && v.lines.length) && !mine.length) lines.append(el("li", { class: "muted empty" }, S.empty));
  $("total").textContent = v ? money(v.saletotal) : money(0);
  $("summary-total").textContent = $("total").textContent;
  $("summary-count").textContent = S.summary(v ? v.lines.length : 0, mine.length);
  renderCustomer();
  renderButtons();
}

function renderButtons() {
  const b = $("submit");
  if (!b) return;
  if (state.held.has(state.sale)) {
    b.disabled = !(state.lane && state.lane.online);
    b.textContent = S.retryOrder;
    return;
  }
  const ready = state.view && state.view.lines.length && state.sale;
  b.disabled = !ready || !canEditLines() || !!state.submitting;
  b.textContent = ready && !canEditLines() ? S.submitWaiting : S.submit;
}

function renderCustomer() {
  const box = $("customer");
  if (!box) return;
  const c = state.view && state.view.customer;
  if (!unchanged(box, JSON.stringify(c || null))) box.replaceChildren(
    c
      ? el(
          "div",
          { class: "row" },
          el("span", { class: "grow" }, el("strong", { id: "customer-name" }, db(c.name)), " ", el("span", { id: "customer-discount", class: "muted" }, S.discount(c.discount))),
          el("button", { type: "button", id: "cust-remove", onclick: () => change("salesbuilder.sale_set_customer", { v: { cid: 0 } }, S.removeCustomer) }, S.customerRemove)
        )
      : el("span", { class: "muted" }, S.customerNone)
  );
  const res = $("cust-results");
  const found = state.customers;
  if (unchanged(res, JSON.stringify(found || null))) return;
  res.replaceChildren(
    ...(found ? found.rows : []).map((c) =>
      el(
        "button",
        { type: "button", class: "cust", dataset: { cid: c.cid }, onclick: () => setCustomer(c) },
        db(c.name),
        c.discount ? el("span", { class: "muted" }, " " + S.discount(c.discount)) : null
      )
    ),
    ...(found && found.note ? [el("p", { class: "muted" }, found.note)] : [])
  );
}

// confirmFor is how long (ms) a first press of Open on an order in use
// elsewhere waits for the second.
const confirmFor = 5000;

// openArmed reports whether p's Open was pressed once and waits for the
// second press.
function openArmed(p) {
  return state.openArmed.physkey === p.physkey && Date.now() < state.openArmed.until;
}

function renderPresells() {
  const ul = $("presells");
  if (!ul) return;
  if (!state.presells.length) {
    ul.replaceChildren(el("li", { class: "muted" }, S.presellsNone));
    return;
  }
  ul.replaceChildren(
    ...state.presells.map((p) =>
      el(
        "li",
        { class: "presell row", dataset: { physkey: p.physkey } },
        el(
          "span",
          { class: "grow" },
          // An order being built has no ticket yet: no words either, which
          // a counter would be asked to recall and could not.
          p.ticket != null ? [S.presellSubmitted(p.ticket), " · ", db(p.ticket_word)] : S.presellBuilding,
          p.in_use_elsewhere && p.physkey !== state.sale ? [" · ", S.presellElsewhere] : null,
          p.atCounter ? [" · ", ...(p.claimed_by ? S.presellWith(db(p.claimed_by)) : [S.presellQueued])] : null
        ),
        el("span", { class: "money" }, money(p.saletotal)),
        // Only an order this tablet still holds can be taken up again here.
        p.phase === 0 && !p.atCounter && p.physkey !== state.sale
          ? el("button", { type: "button", onclick: () => resume(p) }, openArmed(p) ? S.resumeAgain : S.resume)
          : null
      )
    )
  );
}

function showTicket(sale) {
  stopCamera();
  state.ticket = sale;
  state.view = sale;
  localStorage.setItem(store.sale, sale.physkey);
  render();
  $("next").focus();
}

function ticketScreen(sale) {
  const text = encodeURIComponent(sale.ticket_barcode || "");
  // The images come from the lane in use: the one that served the page
  // may be the one that went away.
  const from = state.lane && state.lane.origin !== location.origin ? state.lane.origin : "";
  return el(
    "section",
    { id: "ticket", class: "ticket", "aria-label": S.ticketHeading },
    el("h1", {}, S.ticketHeading),
    el("div", { id: "ticket-number", class: "ticket-number" }, String(sale.ticket)),
    el("div", { id: "ticket-word", class: "ticket-word" }, db(sale.ticket_word || "")),
    el(
      "div",
      { class: "ticket-codes" },
      el("img", { id: "ticket-barcode", class: "ticket-barcode", alt: sale.ticket_barcode || "", src: `${from}/barcode?kind=code128&text=${text}` }),
      el("div", { class: "ticket-text" }, sale.ticket_barcode || ""),
      el("img", { id: "ticket-qr", class: "ticket-qr", alt: "QR " + (sale.ticket_barcode || ""), src: `${from}/barcode?kind=qr&text=${text}` })
    ),
    el("p", { class: "ticket-total money" }, S.total + " " + money(sale.saletotal)),
    el("p", { class: "muted" }, S.ticketHelp),
    el("button", { id: "next", class: "primary", type: "button", onclick: newSale }, S.next)
  );
}

// --- weighed items ---

function openWeigh(w) {
  state.weigh = w;
  const old = $("weigh");
  if (old) old.remove();
  $("app").append(weighDialog());
  // Selected, so that the new weight replaces the old one rather than
  // being typed in front of it (150 g onto 200 g made 150200 g).
  $("weigh-grams").focus();
  $("weigh-grams").select();
}

// heavyGrams is a weight that is asked about once before it is sent: a
// slip of the finger, not a purchase, at a deli counter.
const heavyGrams = 10000;

function closeWeigh() {
  state.weigh = null;
  const d = $("weigh");
  if (d) d.remove();
}

function weighDialog() {
  const w = state.weigh;
  const desc = w.product ? w.product.description : w.line.product.description;
  const input = el("input", { id: "weigh-grams", type: "number", min: "1", step: "1", inputmode: "numeric", value: w.line ? String(w.line.qty) : "" });
  const note = el("p", { class: "muted", id: "weigh-note" });
  let confirmed = 0; // a heavy weight pressed twice
  const ok = () => {
    const g = Number(input.value);
    if (!Number.isInteger(g) || g < 1 || g > 1000000) {
      note.textContent = S.badGrams;
      return;
    }
    if (g > heavyGrams && confirmed !== g) {
      confirmed = g;
      note.textContent = S.heavyGrams(g, w.product ? S.weighAdd : S.weighSave);
      return;
    }
    closeWeigh();
    if (w.product) change("salesbuilder.sale_add_product", { v: { pid: w.product.pid, qty: g } }, S.add(iso(desc)) + " " + S.grams(g));
    else change("salesbuilder.sale_edit_line", { v: { seqnce: w.line.seqnce, qty: g } }, S.edit(iso(desc)));
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") (e.preventDefault(), ok());
    if (e.key === "Escape") closeWeigh();
  });
  return el(
    "div",
    { id: "weigh", class: "overlay", role: "dialog", "aria-modal": "true", "aria-labelledby": "weigh-title" },
    el(
      "div",
      { class: "card dialog" },
      el("h2", { id: "weigh-title" }, S.weighHeading(db(desc))),
      el("label", { for: "weigh-grams" }, S.weighLabel),
      input,
      note,
      el(
        "div",
        { class: "row" },
        el("button", { id: "weigh-cancel", type: "button", onclick: closeWeigh }, S.cancel),
        el("button", { id: "weigh-add", class: "primary grow", type: "button", onclick: ok }, w.product ? S.weighAdd : S.weighSave)
      )
    )
  );
}

// --- camera ---

async function toggleCamera() {
  if (state.camera) {
    stopCamera();
    return;
  }
  const note = $("camera-note");
  if (!window.isSecureContext) {
    note.textContent = S.cameraNeedsHttps;
    return;
  }
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices) {
    note.textContent = S.cameraUnsupported;
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    const video = el("video", { class: "camera", muted: true, playsinline: true });
    video.srcObject = stream;
    $("camera-view").replaceChildren(video);
    await video.play();
    const detector = new window.BarcodeDetector();
    let last = "";
    const cam = { stream, video, timer: 0 };
    state.camera = cam;
    $("camera").textContent = S.cameraStop;
    const tick = async () => {
      if (state.camera !== cam) return;
      try {
        const found = await detector.detect(video);
        const code = found.length ? found[0].rawValue : "";
        // One add per code shown to the camera, not one per frame.
        if (code && code !== last) scan(code);
        last = code || last;
      } catch (e) {
        // a frame that could not be read: try the next one
      }
      cam.timer = setTimeout(tick, 250);
    };
    tick();
  } catch (e) {
    note.textContent = S.cameraFailed(e.message || String(e));
  }
}

function stopCamera() {
  const cam = state.camera;
  if (!cam) return;
  state.camera = null;
  clearTimeout(cam.timer);
  cam.stream.getTracks().forEach((t) => t.stop());
  const view = $("camera-view");
  if (view) view.replaceChildren();
  const b = $("camera");
  if (b) b.textContent = S.camera;
}

// --- start ---

$("title").textContent = S.title;
$("unpair").textContent = S.unpair;
$("unpair").addEventListener("click", unpair);
keyFromFragment();
lanesFromQuery();
// A pairing link opened on a tablet already showing this page changes only
// the fragment: the page does not reload, so it pairs here.
window.addEventListener("hashchange", () => {
  if (!/(?:^#|&)key=/.test(location.hash)) return;
  keyFromFragment();
  state.repair = false;
  // Pairing here is using the tablet here.
  if (state.elsewhere) useHere();
  else start();
});
claimTablet();
queue
  .open()
  .then(loadPending)
  .catch((e) => showError(S.title, { code: "storage", message: String(e) }))
  .finally(start);
