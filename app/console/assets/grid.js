// A table's rows: a grid with sort, the filter form, keyset pages (never the whole table), a count on
// demand, export of what the filter picks, and a row's detail with its related rows; create, edit
// and delete where the caller's scopes allow (the API refuses the rest whatever a page sends).
// A row is found by its primary key as a filter, never as a path: any key value works, commas,
// slashes and dots included.

import { api, download, parse, problem, shown, tableUrl } from "./api.js";
import { fill, h, select } from "./dom.js";
import { builder, conditions, group, toFilter } from "./filters.js";

const states = new Map(); // a table's filter (as edited, and as applied), order and page, while the tab lives
const NOT_GIVEN = "\u0000"; // an enum's "—" in a new row's form: the column's default

function stateOf(name) {
  if (!states.has(name)) states.set(name, { filter: group("and"), applied: null, order: null, limit: 50, pages: [{}], total: null });
  return states.get(name);
}

// The row's primary key as a filter ({id: 7}; {a: "x,y", b: "1/2"}), values exactly as read.
export function keyFilter(table, row) {
  return Object.fromEntries(table.primary_key.map((k) => [k, row[k]]));
}

function cell(column, value) {
  const text = shown(column, value);
  if (text === null) return h("td", { class: "null" }, "NULL");
  return h("td", { title: text.length > 80 ? text.slice(0, 2000) : null }, text.length > 80 ? text.slice(0, 80) + "…" : text);
}

export function rowsView(main, table) {
  const state = stateOf(table.name);
  const may = (action) => table.access.includes(action) && table.kind !== "view";
  const keyed = table.primary_key.length > 0;
  const byName = Object.fromEntries(table.columns.map((c) => [c.name, c]));
  // What the grid shows is what was applied: sorting, pages, counts and exports use the same filter.
  const query = (extra = {}) => ({ input: state.applied ?? undefined, order: state.order ?? undefined, ...extra });

  const filterForm = h("div", { class: "filter-form" });
  const status = h("span", { class: "status", role: "status" });
  const messages = h("div", { class: "messages" });
  const gridBox = h("div", { class: "grid-wrap" });
  const pager = h("div", { class: "pager" });
  const detail = h("aside", { class: "detail", "aria-label": "Row" });
  const apply = () => {
    state.applied = toFilter(state.filter);
    state.pages = [{}];
    state.total = null;
    load();
  };
  builder(filterForm, state.filter, table.columns, apply);

  const exportFormat = select([["csv", "CSV"], ["jsonl", "JSON Lines"], ["xlsx", "XLSX"]], "csv", { "aria-label": "export format" });
  const tools = h(
    "div",
    { class: "tools" },
    h("button", { type: "button", class: "primary", onclick: apply }, "Apply filter"),
    h("button", { type: "button", onclick: () => count() }, "Count rows"),
    table.access.includes("export")
      ? h("span", { class: "export" }, exportFormat, h("button", { type: "button", onclick: () => exportRows() }, "Export"))
      : null,
    may("write") ? h("button", { type: "button", onclick: () => editor(null) }, "New row") : null,
    status,
  );
  const unkeyed = keyed ? null : h("p", { class: "hint" }, `${table.kind === "view" ? "A view" : "This table"} has no primary key: its rows cannot be opened one by one, and pages go by offset.`);
  fill(main, h("details", { class: "filters", open: conditions(state.filter) > 0 }, h("summary", {}, "Filter"), filterForm), tools, unkeyed, messages, h("div", { class: "split" }, h("div", {}, gridBox, pager), detail));

  async function load() {
    const page = state.pages.at(-1);
    fill(status, "loading…");
    try {
      const answer = await api("POST", tableUrl(table.name, "query"), { json: query({ limit: state.limit, ...page }) });
      drawGrid(answer.data);
      const meta = answer.meta;
      const next = meta.next_cursor ? { cursor: meta.next_cursor } : meta.next !== null && meta.next !== undefined ? { offset: meta.next } : null;
      drawPager(next, answer.data.length);
      fill(status, state.total === null ? "" : `${state.total} row(s) match`);
      fill(messages);
    } catch (error) {
      fill(status);
      fill(gridBox); // never rows of another filter under this one's error
      fill(pager);
      fill(messages, problem(error));
    }
  }

  function drawGrid(rows) {
    const head = h(
      "tr",
      {},
      table.columns.map((c) => {
        const dir = state.order === `${c.name}.asc` ? "asc" : state.order === `${c.name}.desc` ? "desc" : null;
        return h(
          "th",
          { scope: "col", "aria-sort": dir ? dir + "ending" : "none" },
          h("button", { type: "button", class: "sort", title: c.type, onclick: () => sortBy(c.name, dir) }, c.name, dir === "asc" ? " ▲" : dir === "desc" ? " ▼" : ""),
        );
      }),
    );
    const body = rows.map((row) =>
      h(
        "tr",
        keyed ? { tabindex: 0, class: "row", onclick: () => open(keyFilter(table, row)), onkeydown: (e) => e.key === "Enter" && open(keyFilter(table, row)) } : {},
        table.columns.map((c) => cell(c, row[c.name])),
      ),
    );
    fill(gridBox, h("table", { class: "grid" }, h("thead", {}, head), h("tbody", {}, body)), rows.length ? null : h("p", { class: "empty" }, "No rows."));
  }

  function drawPager(next, count) {
    const at = state.pages.length;
    fill(
      pager,
      h("button", { type: "button", disabled: at === 1, onclick: () => (state.pages.pop(), load()) }, "← Previous"),
      h("span", {}, ` page ${at} (${count} row(s)) `),
      h("button", { type: "button", disabled: !next, onclick: () => (state.pages.push(next), load()) }, "Next →"),
      select([["25"], ["50"], ["100"], ["500"]], String(state.limit), {
        "aria-label": "rows per page",
        onchange: (e) => ((state.limit = Number(e.target.value)), (state.pages = [{}]), load()),
      }),
    );
  }

  function sortBy(column, dir) {
    state.order = dir === null ? `${column}.asc` : dir === "asc" ? `${column}.desc` : null;
    state.pages = [{}];
    load();
  }

  async function count() {
    try {
      const answer = await api("POST", tableUrl(table.name, "query"), { json: query({ limit: 1, count: "exact" }) });
      state.total = answer.meta.total;
      fill(status, `${state.total} row(s) match`);
    } catch (error) {
      fill(messages, problem(error));
    }
  }

  async function exportRows() {
    try {
      const name = await download("POST", `${tableUrl(table.name, "export")}?format=${exportFormat.value}`, query());
      fill(messages, h("div", { class: "ok", role: "status" }, `Exported ${name}`));
    } catch (error) {
      fill(messages, problem(error));
    }
  }

  // The row a key filter finds, with its related rows (each relation, up to 20 rows).
  async function open(key, note) {
    const fields = ["*", ...(table.relations || []).map((r) => ({ [r.name]: r.many ? { fields: ["*"], limit: 20 } : { fields: ["*"] } }))];
    try {
      const answer = await api("POST", tableUrl(table.name, "query"), { json: { input: key, fields, limit: 1 } });
      if (!answer.data.length) return fill(detail, note || null, h("p", {}, "This row is gone."));
      showRow(answer.data[0], note);
    } catch (error) {
      fill(detail, problem(error));
    }
  }

  function showRow(row, note) {
    const related = (table.relations || []).map((r) => {
      const value = row[r.name];
      const title = h("h4", {}, `${r.name} → ${r.table}`);
      if (value === null || value === undefined) return h("section", { class: "related" }, title, h("p", { class: "null" }, "none"));
      const rows = Array.isArray(value) ? value : [value];
      if (!rows.length) return h("section", { class: "related" }, title, h("p", { class: "empty" }, "none"));
      const names = Object.keys(rows[0]);
      return h(
        "section",
        { class: "related" },
        title,
        h("table", { class: "grid small" }, h("thead", {}, h("tr", {}, names.map((n) => h("th", {}, n)))), h("tbody", {}, rows.map((x) => h("tr", {}, names.map((n) => cell(null, x[n])))))),
      );
    });
    const failure = h("div", { class: "messages" });
    fill(
      detail,
      note || null,
      h("h3", {}, `${table.name} ${table.primary_key.map((k) => shown(byName[k], row[k])).join(", ")}`),
      failure,
      h(
        "dl",
        { class: "fields" },
        table.columns.map((c) => [
          h("dt", {}, c.name, c.kind === "binary" ? h("span", { class: "tag" }, "base64") : null),
          h("dd", { class: row[c.name] === null ? "null" : null }, shown(c, row[c.name]) ?? "NULL"),
        ]),
      ),
      may("write")
        ? h("div", { class: "tools" }, h("button", { type: "button", onclick: () => editor(row) }, "Edit"), h("button", { type: "button", class: "danger", onclick: () => remove(row, failure) }, "Delete"))
        : null,
      related,
    );
  }

  async function remove(row, failure) {
    if (!confirm(`Delete this row of ${table.name}?`)) return;
    try {
      const answer = await api("DELETE", tableUrl(table.name), { json: { input: keyFilter(table, row) } });
      fill(detail, h("div", { class: "ok", role: "status" }, answer.data.affected ? "Deleted." : "This row was gone already."));
      load();
    } catch (error) {
      fill(failure, problem(error)); // above the row, which stays
    }
  }

  // A row's form: `row` null for a new one. Only changed columns are sent on update.
  function editor(row) {
    const fields = table.columns.filter((c) => !c.generated);
    const inputs = new Map();
    const errors = h("div", { class: "messages" });
    const form = h("form", { class: "editor", novalidate: true, onsubmit: (e) => (e.preventDefault(), save()) });
    for (const c of fields) {
      const current = row ? row[c.name] : null;
      const before = row ? shown(c, current) ?? "" : "";
      const id = "f-" + c.name;
      const input =
        c.kind === "enum" && c.members
          ? select([...(row ? [] : [[NOT_GIVEN, "—"]]), ...c.members.map((m) => [m, m === "" ? "(empty)" : m])], row ? before : NOT_GIVEN, { id, name: c.name })
          : c.kind === "json" || (c.max_length && c.max_length > 255)
            ? h("textarea", { id, name: c.name, rows: 3, value: before })
            : h("input", { id, name: c.name, type: "text", value: before, placeholder: row ? null : c.auto_increment || c.has_default ? "(default)" : null });
      const isNull = c.nullable ? h("input", { type: "checkbox", "aria-label": `${c.name} is NULL`, checked: Boolean(row) && current === null }) : null;
      if (isNull) input.addEventListener("input", () => (isNull.checked = false)); // typing a value is not NULL
      const hint = h("small", { class: "field-error" });
      inputs.set(c.name, { input, isNull, hint, column: c, before, wasNull: Boolean(row) && current === null });
      form.append(h("div", { class: "field" }, h("label", { for: id }, c.name, " ", h("span", { class: "type" }, c.type)), input, isNull ? h("label", { class: "nullable" }, isNull, " NULL") : null, hint));
    }
    form.append(h("div", { class: "tools" }, h("button", { type: "submit", class: "primary" }, row ? "Save" : "Create"), h("button", { type: "button", onclick: () => (row ? showRow(row) : fill(detail)) }, "Cancel")));
    fill(detail, h("h3", {}, row ? `Edit ${table.name} ${table.primary_key.map((k) => shown(byName[k], row[k])).join(", ")}` : `New ${table.name} row`), errors, form);

    // A new row's empty field is "not given" (the default), unless the column must be given: then ''.
    const required = (c) => !c.nullable && !c.has_default && !c.auto_increment;

    async function save() {
      const values = [];
      for (const [name, f] of inputs) {
        f.hint.textContent = "";
        f.input.removeAttribute("aria-invalid");
        const nulled = Boolean(f.isNull?.checked);
        const value = f.input.value;
        if (row && nulled === f.wasNull && (nulled || value === f.before)) continue; // unchanged
        if (!row && !nulled && (value === NOT_GIVEN || (value === "" && !required(f.column)))) continue;
        if (nulled) values.push([name, null]);
        else if (f.column.kind === "json") {
          try {
            values.push([name, parse(value)]); // integers past 2^53 kept as written
          } catch {
            mark(name, "not JSON");
            return;
          }
        } else values.push([name, value]);
      }
      const changes = Object.fromEntries(values); // own properties, whatever the names ("__proto__" too)
      try {
        if (row) {
          if (!values.length) return showRow(row);
          const key = keyFilter(table, row);
          const answer = await api("PUT", tableUrl(table.name), { json: { input: changes, where: key } });
          const moved = table.primary_key.some((k) => k in changes); // a key edited: the row is found by its new key
          const found = moved ? Object.fromEntries(table.primary_key.map((k) => [k, k in changes ? changes[k] : row[k]])) : key;
          await open(found, answer.data.affected ? h("div", { class: "ok", role: "status" }, "Saved.") : h("div", { class: "error" }, "No row was changed: it was gone."));
        } else {
          const answer = await api("POST", tableUrl(table.name), { json: { input: changes } });
          const created = Array.isArray(answer.data) ? answer.data[0] : answer.data;
          if (created && keyed) await open(keyFilter(table, created), h("div", { class: "ok", role: "status" }, "Created."));
          else fill(detail, h("div", { class: "ok", role: "status" }, "Created."));
        }
        load();
      } catch (error) {
        fill(errors, problem(error));
        for (const [name, reason] of Object.entries(error.byColumn ? error.byColumn() : {})) mark(name, reason);
      }
    }

    function mark(name, reason) {
      const f = inputs.get(name);
      if (!f) return;
      f.input.setAttribute("aria-invalid", "true");
      f.hint.textContent = reason;
    }
  }

  load();
}
