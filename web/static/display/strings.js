// strings.js: every word the customer display shows, in one place for translation.
export default {
  welcome: "Welcome",
  welcomeSub: "Your order will appear here as it is rung up.",
  notPaired: "This display is not paired.",
  pairHelp: "Open it once as /display/?key=DISPLAY_KEY (all sales) or /display/?key=DISPLAY_KEY&tablet=tablet-1 (one tablet's). Make the key on the lane PC with: greenlane apikey create --name display-1 --scope display",
  refused: (m) => `The lane refused this display's key: ${m}`,
  offline: "Reconnecting to the store…",
  yourOrder: "Your order",
  ticket: (n) => `Ticket #${n}`,
  payAtCounter: "Please pay at the counter.",
  paidSeeCounter: "Paid in full: please see the counter.",
  grams: (g) => `${g} g`,
  qty: (q) => `${q} ×`,
  // name: an isolated element, so these return lists of parts.
  customer: (name) => [name],
  discount: (name, pct) => [name, ` — member discount ${pct}% applied`],
  total: "Total",
  paid: "Paid",
  toPay: "To pay",
  change: "Your change",
  thanks: "Thank you!",
  thanksSub: "See you again soon.",
};
