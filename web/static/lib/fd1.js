// fd1.js: one FD1 connection to the lane. It logs in, sends requests and
// matches each reply to its request by rq, follows firehoses (reopening
// them with `since` after a drop, so no event is missed or shown twice),
// and reconnects by itself with backoff, to the next lane of its list when
// it has several (store mode: every lane serves the same store). It keeps
// no sale state: pages show what the lane answers.

export class FD1Error extends Error {
  // code is the FD1 error code ("not_found", "claimed", …), or "offline"
  // when the request could not be sent or its reply was lost with the link.
  // cause names why an "unavailable" is more than a busy lane (the lane's
  // clock, its disk, the store database, a change whose outcome is
  // unknown): its message is then meant for people. "" for the busy case.
  constructor(code, message, packet) {
    super(message || code);
    this.code = code;
    this.packet = packet;
    this.cause = (packet && packet.error && packet.error.cause) || "";
  }
}

const backoffFirst = 500; // ms before the first reconnect
// ms between attempts at most: a lane restarted is back within seconds,
// and staff waited up to 10 s more for a tablet that had backed off that
// far. An attempt the lane refuses costs it a connection; the ±25% jitter
// spreads a store's devices.
const backoffMost = 3000;
const callTimeout = 15000; // ms a request may wait for its reply

// Lane is a connection that stays up. Events (addEventListener):
//   "status": detail {state, message, code}; state is "connecting",
//             "online", "offline" (will retry) or "refused" (the key was not
//             accepted: it will not retry; pair again). code is the FD1
//             code of a refused login ("limit_reached": the key has its
//             most sockets open), else "".
//   "login":  detail is the login reply's data ({purpose, scopes, valid}).
export class Lane extends EventTarget {
  // key: the API key. purpose: "presell" (chosen on the URL), or
  // "customerdisplay" / "debugscope" (chosen in the login packet), or "".
  // urls: the sockets to use, tried in turn (see laneURLs); default the
  // lane that served the page.
  constructor({ key, purpose = "", urls = [] }) {
    super();
    this.key = key;
    this.purpose = purpose;
    this.urls = urls.length ? urls : [defaultURL(purpose)];
    this.at = 0; // index in urls of the socket in use or being opened
    this.state = "connecting";
    this.ws = null;
    this.seq = 0; // rq counter
    this.pending = new Map(); // rq → {resolve, reject, timer}
    this.subs = new Map(); // rq → firehose subscription
    this.wait = backoffFirst;
    this.stopped = false;
    this.retryTimer = 0;
    this.loginError = null; // a refused login's FD1Error, for its close
  }

  get online() {
    return this.state === "online";
  }

  // url is the socket in use, or the one being opened.
  get url() {
    return this.urls[this.at];
  }

  // origin is the http(s) origin of that lane, for what a page loads from
  // it besides the socket (the ticket's barcode images).
  get origin() {
    const u = new URL(this.url);
    return (u.protocol === "wss:" ? "https://" : "http://") + u.host;
  }

  start() {
    this.stopped = false;
    this.open();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, "page closed");
  }

  // call sends one request and resolves with its reply packet, or rejects
  // with an FD1Error (the lane's error, or "offline"). fields are the other
  // packet fields: k, v, q, qo, qk, ik, mo.
  call(a, fields = {}, { timeout = callTimeout } = {}) {
    if (!this.online) {
      return Promise.reject(new FD1Error("offline", "not connected to the lane"));
    }
    return this.send({ a, ...fields }, timeout);
  }

  // firehose opens a firehose and calls onEvent(packet) for each event,
  // across reconnects. It resolves with a handle whose close() ends it.
  firehose(event, v, onEvent) {
    const sub = { rq: "fh" + ++this.seq, event, v: v || {}, onEvent, since: 0, open: false };
    this.subs.set(sub.rq, sub);
    if (this.online) this.openSub(sub).catch(() => {});
    return {
      close: () => {
        this.subs.delete(sub.rq);
        if (this.online && sub.open) this.send({ a: "fd1.firehose.close_firehose", k: sub.rq }, callTimeout).catch(() => {});
      },
    };
  }

  // --- internals ---

  send(packet, timeout) {
    const rq = packet.rq || "w" + ++this.seq;
    packet.rq = rq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rq);
        reject(new FD1Error("offline", "no reply from the lane in time"));
      }, timeout);
      this.pending.set(rq, { resolve, reject, timer });
      try {
        this.ws.send(JSON.stringify(packet));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(rq);
        reject(new FD1Error("offline", "not connected to the lane"));
      }
    });
  }

  setState(state, message = "", code = "") {
    this.state = state;
    this.dispatchEvent(new CustomEvent("status", { detail: { state, message, code } }));
  }

  open() {
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.retry(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.login();
    ws.onmessage = (m) => this.receive(m.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new FD1Error("offline", "the link to the lane dropped"));
      }
      this.pending.clear();
      for (const sub of this.subs.values()) sub.open = false;
      if (this.stopped || this.state === "refused") return;
      // A login the lane refused for now says why better than the close.
      const refused = this.loginError;
      this.loginError = null;
      if (refused) this.retry(refused.message, refused.code);
      else this.retry(e.reason || "the link to the lane dropped");
    };
  }

  // retry opens the next socket of the list after the backoff: a lane that
  // went away is likely still away, and another serves the same store.
  retry(message, code = "") {
    this.at = (this.at + 1) % this.urls.length;
    this.setState("offline", message, code);
    const wait = this.wait * (0.75 + Math.random() / 2);
    this.wait = Math.min(this.wait * 2, backoffMost);
    this.retryTimer = setTimeout(() => this.open(), wait);
  }

  async login() {
    const v = { apikey: this.key };
    if (this.purpose && this.purpose !== "presell") v.purpose = this.purpose;
    let reply;
    try {
      reply = await this.send({ a: "fd1.session.login", v }, callTimeout);
    } catch (e) {
      if (e.code === "login_failed" || e.code === "forbidden") {
        this.setState("refused", e.message);
        this.ws.close(1000, "key refused");
      } else if (this.ws) {
        this.loginError = e;
        this.ws.close(1000, "login failed");
      }
      return;
    }
    this.wait = backoffFirst;
    this.setState("online");
    this.dispatchEvent(new CustomEvent("login", { detail: reply.data || {} }));
    for (const sub of this.subs.values()) this.openSub(sub).catch(() => {});
  }

  // openSub opens sub's firehose from since (by default the last event it
  // delivered). When what was missed does not fit one burst, the lane
  // answers catching_up: it sends a first part after the ack, and the
  // firehose is not live until it is opened again from the ack's resume
  // (as often as it takes, until an ack says open).
  openSub(sub, since = sub.since) {
    const v = { event: sub.event, ...sub.v };
    if (since) v.since = since;
    return this.send({ a: "fd1.firehose.open_firehose", rq: sub.rq, v }, callTimeout).then((r) => {
      const d = r.data || {};
      if (d.status === "catching_up" && typeof d.resume === "number") {
        if (this.subs.get(sub.rq) !== sub) return r; // closed meanwhile
        // sub.since stays: this burst's events come after the ack and
        // move it on as they are delivered; set to resume now, it would
        // drop them as already seen.
        return this.openSub(sub, d.resume);
      }
      // A journal whose head is behind what we asked to resume from went
      // back (the lane DB was restored, or reset): its new events reuse
      // seqs we have seen, and would all be dropped as old.
      if (typeof d.seq === "number" && d.seq < since) sub.since = d.seq;
      sub.open = true;
      return r;
    });
  }

  receive(text) {
    let p;
    try {
      p = JSON.parse(text);
    } catch (e) {
      return;
    }
    const rq = p.rp == null ? "" : String(p.rp);
    if (p.r !== undefined) {
      // A reply. Chunked replies (never asked for here) would end at last.
      const waiting = this.pending.get(rq);
      if (!waiting) return;
      this.pending.delete(rq);
      clearTimeout(waiting.timer);
      if (p.error) waiting.reject(new FD1Error(p.error.code, p.error.message, p));
      else waiting.resolve(p);
      return;
    }
    const sub = this.subs.get(rq);
    if (!sub) return;
    if (typeof p.seq === "number") {
      if (p.seq <= sub.since) return; // already shown before a reconnect
      sub.since = p.seq;
    }
    sub.onEvent(p);
  }
}

// defaultURL is the lane's socket on the host that served the page.
function defaultURL(purpose) {
  return socketURL(location.origin, purpose);
}

// socketURL is the FD1 socket of the lane at base (http(s)://host[:port],
// or its ws(s) form; any path is ignored), or "" when base is not one.
function socketURL(base, purpose) {
  let u;
  try {
    u = new URL(base.includes("//") ? base : "http://" + base);
  } catch (e) {
    return "";
  }
  const scheme = { "http:": "ws:", "ws:": "ws:", "https:": "wss:", "wss:": "wss:" }[u.protocol];
  if (!scheme || !u.host) return "";
  const q = purpose === "presell" ? "?purpose=presell" : "";
  return `${scheme}//${u.host}/fd1/open_websocket${q}`;
}

// laneURLs turns a list of lane addresses (comma-separated base URLs:
// "http://lane1:3490,http://lane2:3490"; "lane2:3490" means http) into
// their sockets, dropping what is not an address. The lane that served the
// page comes first, added when the list leaves it out; the others keep
// their order, which is the order a dropped socket tries them in.
export function laneURLs(list, purpose) {
  const urls = [];
  for (const base of String(list || "").split(",")) {
    const u = socketURL(base.trim(), purpose);
    if (u && !urls.includes(u)) urls.push(u);
  }
  const own = urls.indexOf(defaultURL(purpose));
  // The lane that served the page is always tried first: a link naming
  // only other lanes (a mistyped one, or a hostile one) must not take the
  // tablet off the lane it stands at until someone clears it.
  if (own < 0) return [defaultURL(purpose), ...urls];
  return [...urls.slice(own), ...urls.slice(0, own)];
}

// newIK is a fresh idempotency key for one change: a retry of the same
// change sends the same ik, so the lane applies it once. The tablet also
// names the sales it starts with one (their physkey). A UUIDv7: its first
// 48 bits are the time in milliseconds, so that keys made one after
// another sit side by side in the lane DB's indexes (a batch of changes
// then writes one index page, not one per change), as SPEC §7.2 has
// physkeys built so that rows cluster.
export function newIK() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// money formats a lane amount (a decimal number of dollars) for display.
export function money(n) {
  const v = Number(n || 0);
  return (v < 0 ? "-" : "") + "$" + Math.abs(v).toFixed(2);
}

// el builds an element: el("button", {class: "big", onclick: f}, "text", child…).
// Text is always set as text, never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
