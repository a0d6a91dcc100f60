// The console: sign in, the tables the credential may read, and a page per table (rows, import,
// rules) and for dead letters, chosen by the URL's fragment (#/t/users/import).

import { ApiError, REFUSED, api, credential, path, problem } from "./api.js";
import { fill, h } from "./dom.js";
import { rowsView } from "./grid.js";
import { importView } from "./importer.js";
import { lettersView } from "./letters.js";
import { rulesView } from "./rules.js";

const main = document.getElementById("main");
const side = document.getElementById("side");
const banner = document.getElementById("banner");
const who = document.getElementById("who");
const signOut = document.getElementById("sign-out");
const SHOWN = 300; // tables listed at once in the side bar (a filter finds the others)

let auth = null; // the gateway's auth mode, from /health/ready
let tables = null; // what GET /api/tables answered for this credential

async function boot() {
  try {
    auth = (await api("GET", "/health/ready")).data.auth;
  } catch (error) {
    auth = error.details?.auth ?? null; // not ready: the pages say why when they call
  }
  if (auth === "none") {
    banner.hidden = false;
    fill(banner, "Authentication is off: anyone who reaches this gateway may read and write every table.");
  }
  if (auth !== "none" && !credential.get()) return signIn();
  await enter();
}

function signIn(failure) {
  tables = null;
  fill(side);
  fill(who);
  signOut.hidden = true;
  const field = h("input", { id: "credential", type: "password", autocomplete: "off", required: true, size: 48 });
  fill(
    main,
    h(
      "form",
      { class: "sign-in", onsubmit: (e) => (e.preventDefault(), credential.set(field.value.trim()), enter()) },
      h("h2", {}, "Sign in"),
      h("label", { for: "credential" }, "API key or token"),
      field,
      h("p", { class: "hint" }, "Kept in this tab's session storage only, and sent as an Authorization header."),
      failure ? problem(failure) : null,
      h("button", { type: "submit", class: "primary" }, "Sign in"),
    ),
  );
  field.focus();
}

async function enter() {
  try {
    const answer = await api("GET", "/api/tables");
    tables = answer.data.filter((t) => t.kind === "table" || t.kind === "view");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      credential.set(null);
      return signIn(error);
    }
    fill(main, problem(error));
    return;
  }
  signOut.hidden = auth === "none";
  fill(who, auth === "none" ? "" : "signed in");
  drawSide("");
  route();
}

function drawSide(term) {
  const list = h("ul", { class: "tables" });
  const search = h("input", { type: "search", placeholder: "find a table", "aria-label": "find a table", value: term });
  const matching = tables.filter((t) => t.name.toLowerCase().includes(term.toLowerCase()));
  for (const t of matching.slice(0, SHOWN)) {
    list.append(h("li", {}, h("a", { href: `#/t/${encodeURIComponent(t.name)}`, "data-table": t.name }, t.name, t.kind === "view" ? h("span", { class: "tag" }, "view") : null)));
  }
  search.addEventListener("input", () => {
    const at = search.selectionStart;
    drawSide(search.value);
    const again = side.querySelector("input[type=search]");
    again.focus();
    again.setSelectionRange(at, at);
  });
  fill(
    side,
    h("p", {}, h("a", { href: "#/dead-letters" }, "Dead letters")),
    search,
    h("p", { class: "hint" }, `${matching.length} of ${tables.length} table(s)`),
    list,
    matching.length > SHOWN ? h("p", { class: "hint" }, `… ${matching.length - SHOWN} more: narrow the filter`) : null,
  );
  marked();
}

function fragment() {
  try {
    return location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  } catch {
    return []; // a fragment that is not percent-encoding: the tables
  }
}

// The side bar's link to the table on show, marked.
function marked() {
  const parts = fragment();
  for (const link of side.querySelectorAll("a[data-table]")) link.toggleAttribute("aria-current", parts[0] === "t" && link.dataset.table === parts[1]);
}

async function route() {
  if (!tables) return;
  const parts = fragment();
  marked();
  if (parts[0] === "dead-letters") return lettersView(main);
  if (parts[0] !== "t" || !parts[1]) return home();
  const name = parts[1];
  const tab = parts[2] || "rows";
  let table;
  try {
    table = (await api("GET", `/api/tables/${path(name)}`)).data;
  } catch (error) {
    if (error.status !== 401) fill(main, problem(error)); // a 401: the sign-in form has taken the page
    return;
  }
  const tabs = [["rows", "Rows"], ["columns", "Columns"]];
  if (table.access.includes("import") && table.kind !== "view") tabs.push(["import", "Import"]);
  if (table.kind !== "view") tabs.push(["rules", "Rules"]); // rules check writes: a view takes none
  const body = h("div", { class: "tab-body" });
  fill(
    main,
    h("h2", {}, table.name, table.kind === "view" ? h("span", { class: "tag" }, "view (read-only)") : null),
    h("nav", { class: "tabs" }, tabs.map(([id, label]) => h("a", { href: `#/t/${encodeURIComponent(name)}/${id}`, "aria-current": id === tab ? "page" : null }, label))),
    body,
  );
  if (tab === "columns") columnsView(body, table);
  else if (tab === "import" && tabs.some(([id]) => id === "import")) importView(body, table);
  else if (tab === "rules" && table.kind !== "view") rulesView(body, table);
  else rowsView(body, table);
}

function columnsView(where, table) {
  const keys = new Set(table.primary_key);
  fill(
    where,
    h(
      "table",
      { class: "grid" },
      h("thead", {}, h("tr", {}, ["column", "type", "null", "default", "key"].map((n) => h("th", {}, n)))),
      h(
        "tbody",
        {},
        table.columns.map((c) =>
          h("tr", {}, h("td", {}, c.name), h("td", {}, c.type), h("td", {}, c.nullable ? "yes" : "no"), h("td", {}, c.auto_increment ? "auto" : c.generated ? "generated" : c.has_default ? "yes" : ""), h("td", {}, keys.has(c.name) ? "primary" : "")),
        ),
      ),
    ),
    (table.relations || []).length ? h("h4", {}, "Relations") : null,
    (table.relations || []).map((r) => h("p", {}, `${r.name}: ${r.many ? "rows of" : "a row of"} `, h("a", { href: `#/t/${encodeURIComponent(r.table)}` }, r.table), ` (${Object.entries(r.columns).map(([a, b]) => `${a} → ${b}`).join(", ")})`)),
  );
}

function home() {
  fill(
    main,
    h("h2", {}, "Tables"),
    h(
      "table",
      { class: "grid" },
      h("thead", {}, h("tr", {}, ["table", "kind", "columns", "you may"].map((n) => h("th", {}, n)))),
      h("tbody", {}, tables.slice(0, SHOWN).map((t) => h("tr", {}, h("td", {}, h("a", { href: `#/t/${encodeURIComponent(t.name)}` }, t.name)), h("td", {}, t.kind), h("td", {}, t.columns), h("td", {}, t.access.join(", "))))),
    ),
    tables.length > SHOWN ? h("p", { class: "hint" }, `The first ${SHOWN} of ${tables.length} tables: find the others in the side bar.`) : null,
  );
}

signOut.addEventListener("click", () => {
  credential.set(null);
  location.hash = "#/";
  signIn();
});
window.addEventListener("hashchange", route);
window.addEventListener(REFUSED, (event) => {
  if (tables === null) return; // signing in: enter() says why
  credential.set(null);
  signIn(event.detail);
});
boot();
