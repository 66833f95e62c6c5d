// display.js: the screen facing the customer. No input: it is paired by its
// address once, then follows custdisp.sale.* events (each carries the whole
// sale) and shows idle → the sale → payment → thank-you → idle. fd1.js
// reopens the firehose with `since` after a drop, so it catches up rather
// than showing a stale sale; opened mid-sale (switched on, reloaded), it gets
// the sale in progress from the lane first.
import { Lane, money, el } from "../lib/fd1.js";
import S from "./strings.js";

const keyStore = "greenlane.display.key";
const tabletStore = "greenlane.display.tablet";
const thanksFor = 6000; // ms the thank-you stays before idle
// A submitted presell waiting at the counter (or one a counter let go
// unpaid) stays on screen this long without a change, then the display
// goes idle: the next customer must not face the last one's order.
const parkedFor = 60000;

const app = document.getElementById("app");
let info = null; // fd1.customerdisplay.get_info's data
let shown = null; // the sale on screen (a custdisp body), or null: idle
let thanksTimer = 0;
// next: the latest other sale that moved while a thank-you was on screen,
// shown once it has run.
let next = null;
let parkedTimer = 0;
const view = {};

function pairFromAddress() {
  const q = new URLSearchParams(location.search);
  if (!q.has("key")) return;
  localStorage.setItem(keyStore, q.get("key"));
  if (q.get("tablet")) localStorage.setItem(tabletStore, q.get("tablet"));
  else localStorage.removeItem(tabletStore);
  // The key must not stay in the address bar, history or a bookmark.
  history.replaceState(null, "", location.pathname);
}

function start() {
  pairFromAddress();
  const key = localStorage.getItem(keyStore);
  view.status = el("div", { class: "banner offline hidden", id: "status", role: "status" });
  view.main = el("main", { class: "display", id: "display", "aria-live": "polite" });
  app.replaceChildren(view.status, view.main);
  if (!key) return notPaired("");
  const tablet = localStorage.getItem(tabletStore) || "";
  const lane = new Lane({ key, purpose: "customerdisplay" }).start();
  lane.addEventListener("status", ({ detail }) => {
    if (detail.state === "refused") {
      localStorage.removeItem(keyStore);
      return notPaired(S.refused(detail.message));
    }
    view.status.textContent = S.offline;
    view.status.classList.toggle("hidden", detail.state === "online" || detail.state === "connecting");
  });
  lane.addEventListener("login", async () => {
    try {
      const r = await lane.call("fd1.customerdisplay.get_info");
      info = r.data || {};
      render();
    } catch (e) {
      // The store's name is a nicety; the sale still shows without it.
    }
  });
  lane.firehose("custdisp.sale", tablet ? { tablet } : {}, (p) => onEvent(p.v || {}));
  render();
}

// fill replaces node's children, leaving out the parts not shown (null).
function fill(node, ...kids) {
  node.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));
}

function notPaired(message) {
  view.main.className = "display idle";
  fill(view.main,
    el("h1", {}, S.notPaired),
    message ? el("p", { class: "err" }, message) : null,
    el("p", { class: "help" }, S.pairHelp),
  );
}

// atCounter tells whether a counter is working on the sale: one it
// recalled, or its own. That sale is in front of the customer watching a
// lane-wide display; one a tablet is building is not.
const atCounter = (v) => !!(v && v.source && v.source.holder && v.source.holder !== v.source.tablet);

// onEvent takes one custdisp body. A sale that is finished clears the
// screen: completed ones after a thank-you, voided ones at once.
function onEvent(v) {
  const status = v.status;
  if (next && next.salephyskey === v.salephyskey) next = status === "active" || status === "parked" ? v : null;
  if (status === "idle") {
    // The lane's idle follows a completion or a void; a thank-you on
    // screen keeps its few seconds.
    if (thanksTimer) return;
    if (!shown || shown.salephyskey === v.salephyskey) return setShown(null);
    return;
  }
  if (status === "complete") {
    if (shown && shown.salephyskey !== v.salephyskey && shown.status === "active") return;
    clearTimeout(thanksTimer);
    next = null;
    setShown(v);
    thanksTimer = setTimeout(() => {
      thanksTimer = 0;
      if (shown && shown.status === "complete") setShown(next);
      next = null;
    }, thanksFor);
    return;
  }
  if (status === "void") {
    if (shown && shown.salephyskey === v.salephyskey) setShown(null);
    return;
  }
  // active or parked. On a lane-wide display several sales move at once.
  if (shown && shown.salephyskey !== v.salephyskey) {
    // A thank-you runs its time (the customer may be reading the change
    // due); the sale that moved last is shown after it.
    if (thanksTimer) {
      next = v;
      return;
    }
    // The sale at the counter keeps the screen from one a tablet is
    // building; the one being paid, or being built, keeps it from
    // another that was merely parked or started elsewhere.
    if (shown.status === "active") {
      if (atCounter(shown) && !atCounter(v)) return;
      if ((shown.payments || []).length || status === "parked") return;
    }
  }
  setShown(v);
}

function setShown(v) {
  shown = v;
  clearTimeout(parkedTimer);
  parkedTimer = 0;
  if (v && v.status === "parked") {
    parkedTimer = setTimeout(() => {
      parkedTimer = 0;
      if (shown === v) setShown(null);
    }, parkedFor);
  }
  render();
}

function storeName() {
  return (info && (info.storename || (info.location && info.location.name))) || "";
}

function address() {
  const l = info && info.location;
  if (!l) return "";
  return [l.address1, l.address2, l.city].filter(Boolean).join(", ");
}

function render() {
  if (!view.main) return;
  const s = shown;
  if (!s) return renderIdle();
  if (s.status === "complete") return renderThanks(s);
  renderSale(s);
}

function renderIdle() {
  view.main.className = "display idle";
  fill(view.main,
    el("p", { class: "store", id: "store" }, storeName()),
    el("h1", { class: "welcome" }, S.welcome),
    el("p", { class: "sub" }, S.welcomeSub),
    address() ? el("p", { class: "address" }, address()) : null,
  );
}

function renderThanks(s) {
  const { change } = sums(s);
  view.main.className = "display thanks";
  fill(view.main,
    el("h1", { class: "welcome", id: "thanks" }, S.thanks),
    change > 0 ? el("p", { class: "change" }, S.change, " ", el("span", { class: "money" }, money(change))) : null,
    el("p", { class: "sub" }, S.thanksSub),
    el("p", { class: "store" }, storeName()),
  );
}

function sums(s) {
  const total = Number(s.saletotal) || 0;
  const paid = (s.payments || []).reduce((a, p) => a + (Number(p.amount) || 0), 0);
  const cents = Math.round(paid * 100) - Math.round(total * 100);
  return { total, paid, change: cents > 0 ? cents / 100 : 0, due: cents < 0 ? -cents / 100 : 0 };
}

function renderSale(s) {
  const { total, paid, change, due } = sums(s);
  const paying = (s.payments || []).length > 0;
  view.main.className = "display sale" + (paying ? " paying" : "");
  const rows = (s.lines || []).map((ln) =>
    el(
      "li",
      { class: "line" },
      el("span", { class: "qty" }, ln.measurement ? S.grams(ln.qty) : S.qty(ln.qty)),
      el("span", { class: "desc" }, (ln.product && ln.product.description) || ""),
      el("span", { class: "money" }, money(ln.totalprice)),
    ),
  );
  fill(view.main,
    el(
      "header",
      { class: "sale-head" },
      el("h1", {}, s.ticket ? S.ticket(s.ticket) : S.yourOrder),
      el("span", { class: "store" }, storeName()),
    ),
    // The name is isolated (bidi controls in it cannot reorder the words
    // after it) and the line is at most two lines tall.
    s.customer
      ? el("p", { class: "customer", id: "customer", title: s.customer },
        Number(s.customer_discount) > 0 ? S.discount(el("bdi", {}, s.customer), Number(s.customer_discount)) : S.customer(el("bdi", {}, s.customer)))
      : null,
    el("ol", { class: "lines", id: "lines" }, rows),
    el(
      "dl",
      { class: "totals" },
      el("dt", {}, S.total),
      el("dd", { class: "money total", id: "total" }, money(total)),
      paying ? [el("dt", {}, S.paid), el("dd", { class: "money", id: "paid" }, money(paid))] : null,
      paying && due > 0 ? [el("dt", {}, S.toPay), el("dd", { class: "money", id: "due" }, money(due))] : null,
      change > 0 ? [el("dt", { class: "change" }, S.change), el("dd", { class: "money change", id: "change" }, money(change))] : null,
    ),
    // Set aside at the counter: to pay, or paid (the change, if any, is
    // still the customer's).
    s.status === "parked" ? el("p", { class: "sub", id: "parked-note" }, paying && due === 0 ? S.paidSeeCounter : S.payAtCounter) : null,
  );
  // The newest line is the last: keep it in view when the lines scroll.
  const lines = document.getElementById("lines");
  lines.scrollTop = lines.scrollHeight;
}

start();
