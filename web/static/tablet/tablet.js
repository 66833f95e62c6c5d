// tablet.js: the tablet screen (being written).
import { el } from "../lib/fd1.js";
document.getElementById("app").append(el("main", {}, el("h1", {}, "Tablet")));
