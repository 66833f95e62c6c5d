// Every string the tablet shows, in one place for translation.
export default {
  title: "Tablet",
  pairHeading: "Pair this tablet",
  pairHelp: "Type or paste this tablet's presell key, or scan the QR that `greenlane apikey create --name tablet-1 --scope presell --qr` prints.",
  pairLabel: "Presell key",
  pairButton: "Pair",
  pairedAs: (name) => ["paired as ", name], // name: an isolated element
  pairedNoName: "paired (the name shows after the first sale)",
  unpair: "Unpair",
  // This page stood aside for the same tablet's page in another tab or
  // window, which has the order now.
  elsewhereHeading: "Open in another tab",
  elsewhereHelp: "This tablet's page was opened in another tab or window, and the order is there. Use that one, or take the order back here.",
  useHere: "Use here",
  unpairConfirm: (n) => (n ? `${n} changes have not reached the lane yet and will be lost. Unpair anyway?` : "Unpair this tablet?"),
  connecting: "connecting to the lane…",
  offline: (n) => `offline — ${n} ${n === 1 ? "change" : "changes"} waiting`,
  offlineNone: "offline — reconnecting",
  online: "connected to the lane",
  sending: (n) => `sending ${n} ${n === 1 ? "change" : "changes"}…`,
  // The lane refuses the changes for a reason it gives (why): they are
  // kept and sent again until it takes them.
  // One short line, so that the strip does not grow over the products: the
  // lane's own sentence is for the counter and the log, not for a queue.
  refusedWhy: (n, why) => `${n} ${n === 1 ? "change" : "changes"} waiting: the lane cannot take changes (${why}). Trying again…`,
  // why, by the cause of the lane's unavailable; causeOther for one not listed.
  causes: {
    clock: "its clock is off: tell the manager",
    storage: "its disk refuses writes: tell the manager",
    db_locked: "another lane holds the store database",
    db_unreachable: "it cannot reach the store database",
    outcome_unknown: "it lost the store database while saving one; it will not make it twice",
  },
  causeOther: "tell the manager",
  held: (n) => `${n} ${n === 1 ? "change" : "changes"} kept on this tablet: tap Retry to send`,
  heldNote: "The order is kept on this tablet; tap Retry to send it.",
  retry: "Retry",
  discard: "Discard",
  discardConfirm: (n) => `Discard this order? Its ${n} ${n === 1 ? "change" : "changes"} kept on this tablet will not be sent.`,
  retryOrder: "Retry sending this order",
  kept: "kept, not sent",
  movedNote: "The products and customer tapped since are kept in a new order.",
  refused: (m) => `The lane refused this tablet's key (${m}). Pair it again with a new key; the changes waiting are kept.`,
  pairAgain: "Pair again",
  keyBusy: (n) =>
    `This tablet's key is open on too many screens: close this page in other tabs, or give each tablet its own key. Trying again${n ? `; ${n} ${n === 1 ? "change" : "changes"} waiting` : ""}.`,
  searchLabel: "Search by name or PLU",
  scanLabel: "Scan a barcode",
  scanPlaceholder: "scan or type a barcode, then Enter",
  camera: "Scan with camera",
  cameraStop: "Stop camera",
  cameraNeedsHttps: "Camera scanning needs https: this page came over plain http. Use the scan field or tap products.",
  cameraUnsupported: "This browser cannot read barcodes from the camera. Use the scan field or tap products.",
  cameraFailed: (m) => `The camera could not start: ${m}`,
  allDepartments: "All",
  noProducts: "No product matches.",
  order: "Order",
  empty: "Tap a product or scan a barcode to start.",
  total: "Total",
  summary: (lines, waiting) => `${lines} ${lines === 1 ? "line" : "lines"}${waiting ? ` + ${waiting} waiting` : ""} · see order`,
  waitingNote: "changes waiting for the lane",
  waiting: "waiting",
  grams: (g) => `${g} g`,
  qty: (q) => `× ${q}`,
  less: (d) => `One less ${d}`,
  more: (d) => `One more ${d}`,
  weigh: "Change weight",
  remove: "Remove",
  removeLabel: (d) => `Remove ${d}`,
  discounted: "discounted",
  customer: "Customer",
  customerLabel: "Find a customer by name or phone",
  customerFind: "Find",
  customerNone: "No customer on this sale.",
  customerNoMatch: "No customer matches.",
  customerNeedsLane: "Finding a customer needs the lane: wait for the connection.",
  customerRemove: "Remove customer",
  discount: (d) => `${d}% discount`,
  submit: "Submit",
  submitWaiting: "Submit (waiting for the lane)",
  ticketHeading: "Your ticket",
  ticketHelp: "Show this at the counter, or photograph it.",
  next: "Next customer",
  weighHeading: (d) => ["Weigh ", d], // d: an isolated element
  weighLabel: "Weight in grams",
  weighAdd: "Add",
  weighSave: "Save",
  cancel: "Cancel",
  badGrams: "Give the weight in whole grams, 1 or more.",
  heavyGrams: (g, again) => `${(g / 1000).toLocaleString("en", { maximumFractionDigits: 3 })} kg: is that right? Press ${again} again to keep it.`,
  presells: "My open presells",
  presellsNone: "None open.",
  presellBuilding: "being built",
  presellSubmitted: (t) => `ticket ${t}`,
  presellWith: (counter) => ["at the counter (", counter, ")"], // counter: an isolated element
  presellQueued: "waiting for the counter",
  resume: "Open",
  presellElsewhere: "open on another device",
  resumeAgain: "Open here too? Press again",
  dismiss: "Dismiss",
  failed: (what, said) => [what, ": ", said].flat(), // said: a sentence, or the lane's message as an isolated element
  // errors: one sentence for each lane error code a tablet can meet, in
  // the server's words. x is {message (the lane's), db (isolates a DB
  // value)}. A function may return "" to show the lane's own message.
  errors: {
    unknown_product: (x) =>
      / is not for sale$/.test(x.message) ? "That product is not for sale today." : "No product has that barcode or PLU: check it, or tap the product instead.",
    conflict: (x) => {
      const m = /submitted as presell ticket (\d+)/.exec(x.message);
      if (m) return `This order was submitted as ticket #${m[1]}: only the counter can change it now.`;
      if (/ is completed /.test(x.message)) return "This order is already paid at the counter: it cannot change.";
      if (/ was cancelled$/.test(x.message)) return "This order was voided at the counter: it cannot change.";
      if (/at the same moment/.test(x.message)) return "Another screen changed this order at the same moment: try again.";
      return "";
    },
    has_payments: () => "The counter has taken payment on this order: only the counter can change it now.",
    claimed: (x) =>
      / belongs to /.test(x.message)
        ? "This order was started under this tablet's old key: the new key cannot change it."
        : "A counter has this order open: only the counter can change it now.",
    not_found: (x) => (/^no sale with physkey /.test(x.message) ? "This order is no longer on the lane: it was voided, or started under another key." : ""),
    // A limit (lines on a sale, open presells of this key, tickets on the
    // lane): said in a server's words where the lane's message is for the
    // manager (it names serve flags); the tickets' message is the lane's.
    // A refused Submit leaves the order here, to submit again once there is
    // room; a refused start keeps the order queued for Retry.
    limit_reached: (x) => {
      let m = /has (\d+) open presells/.exec(x.message);
      if (m) return `This tablet already has ${m[1]} open ${m[1] === "1" ? "order" : "orders"}, the most it may have: the counter must complete or void one first.`;
      m = /already holds (\d+) lines/.exec(x.message);
      if (m) return `This order already has ${m[1]} ${m[1] === "1" ? "line" : "lines"}, the most one order may have: change a line's quantity instead.`;
      return "";
    },
    forbidden: () => "This tablet's key may not do that: pair it with a presell key.",
    rate_limited: () => "The lane is busy: wait a moment and try again.",
    // With a cause the lane says why in words for people; without one it
    // is busy or shutting down.
    unavailable: (x) => (x.cause ? ["The lane cannot take changes now: ", x.db(x.message), ""] : "The lane is shutting down or too busy: try again in a moment."),
    internal: () => "The lane hit a fault: try again, and tell the manager if it happens again (the lane's log has the details).",
  },
  add: (d) => `Add ${d}`,
  addBarcode: (b) => `Scan ${b}`,
  setCustomer: (n) => `Customer ${n}`,
  removeCustomer: "Remove customer",
  create: "Start sale",
  edit: (d) => `Change ${d}`,
  removeLine: (d) => `Remove ${d}`,
  park: "Submit",
};
