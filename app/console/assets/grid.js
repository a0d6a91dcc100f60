// A table's rows: a grid with sort, the filter form, keyset pages (never the whole table), a count on
// demand, export of what the filter picks, and a row's detail with its related rows; create, edit
// and delete where the caller's scopes allow (the API refuses the rest whatever a page sends).

import { api, download, path, problem, text } from "./api.js";
import { fill, h, select } from "./dom.js";
import { builder, conditions, group, toFilter } from "./filters.js";

const states = new Map(); // a table's filter, order and page, kept while the tab lives

function stateOf(name) {
  if (!states.has(name)) states.set(name, { filter: group("and"), order: null, limit: 50, pages: [{}], total: null });
  return states.get(name);
}

export function keyOf(table, row) {
  return table.primary_key.map((k) => encodeURIComponent(text(row[k]))).join(",");
}

function cell(value) {
  const shown = text(value);
  if (shown === null) return h("td", { class: "null" }, "NULL");
  return h("td", { title: shown.length > 80 ? shown.slice(0, 2000) : null }, shown.length > 80 ? shown.slice(0, 80) + "…" : shown);
}

export function rowsView(main, table) {
  const state = stateOf(table.name);
  const may = (action) => table.access.includes(action);
  const keyed = table.primary_key.length > 0;
  const query = (extra = {}) => ({ input: toFilter(state.filter) ?? undefined, order: state.order ?? undefined, ...extra });

  const filterForm = h("div", { class: "filter-form" });
  const status = h("span", { class: "status", role: "status" });
  const messages = h("div", { class: "messages" });
  const gridBox = h("div", { class: "grid-wrap" });
  const pager = h("div", { class: "pager" });
  const detail = h("aside", { class: "detail", "aria-label": "Row" });
  const apply = () => ((state.pages = [{}]), (state.total = null), load());
  builder(filterForm, state.filter, table.columns, apply);

  const exportFormat = select([["csv", "CSV"], ["jsonl", "JSON Lines"], ["xlsx", "XLSX"]], "csv", { "aria-label": "export format" });
  const tools = h(
    "div",
    { class: "tools" },
    h("button", { type: "button", class: "primary", onclick: apply }, "Apply filter"),
    h("button", { type: "button", onclick: () => count() }, "Count rows"),
    may("export")
      ? h("span", { class: "export" }, exportFormat, h("button", { type: "button", onclick: () => exportRows() }, "Export"))
      : null,
    may("write") && table.kind !== "view" ? h("button", { type: "button", onclick: () => editor(null) }, "New row") : null,
    status,
  );
  const unkeyed = keyed ? null : h("p", { class: "hint" }, `${table.kind === "view" ? "A view" : "This table"} has no primary key: its rows cannot be opened one by one, and pages go by offset.`);
  fill(main, h("details", { class: "filters", open: conditions(state.filter) > 0 }, h("summary", {}, "Filter"), filterForm), tools, unkeyed, messages, h("div", { class: "split" }, h("div", {}, gridBox, pager), detail));

  async function load() {
    const page = state.pages.at(-1);
    fill(status, "loading…");
    try {
      const answer = await api("POST", `/api/${path(table.name)}/query`, { json: query({ limit: state.limit, ...page }) });
      drawGrid(answer.data);
      const meta = answer.meta;
      const next = meta.next_cursor ? { cursor: meta.next_cursor } : meta.next !== null && meta.next !== undefined ? { offset: meta.next } : null;
      drawPager(next, answer.data.length);
      fill(status, state.total === null ? "" : `${state.total} row(s) match`);
      fill(messages);
    } catch (error) {
      fill(status);
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
        keyed ? { tabindex: 0, class: "row", onclick: () => open(row), onkeydown: (e) => e.key === "Enter" && open(row) } : {},
        table.columns.map((c) => cell(row[c.name])),
      ),
    );
    fill(gridBox, h("table", { class: "grid" }, h("thead", {}, head), h("tbody", {}, body)), rows.length ? null : h("p", { class: "empty" }, "No rows."));
  }

  function drawPager(next, shown) {
    const at = state.pages.length;
    fill(
      pager,
      h("button", { type: "button", disabled: at === 1, onclick: () => (state.pages.pop(), load()) }, "← Previous"),
      h("span", {}, ` page ${at} (${shown} row(s)) `),
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
      const answer = await api("POST", `/api/${path(table.name)}/query`, { json: query({ limit: 1, count: "exact" }) });
      state.total = answer.meta.total;
      fill(status, `${state.total} row(s) match`);
    } catch (error) {
      fill(messages, problem(error));
    }
  }

  async function exportRows() {
    try {
      const name = await download("POST", `/api/batch/${path(table.name)}/export?format=${exportFormat.value}`, query());
      fill(messages, h("div", { class: "ok", role: "status" }, `Exported ${name}`));
    } catch (error) {
      fill(messages, problem(error));
    }
  }

  async function open(row) {
    const fields = ["*", ...(table.relations || []).map((r) => ({ [r.name]: r.many ? { fields: ["*"], limit: 20 } : { fields: ["*"] } }))];
    const where = Object.fromEntries(table.primary_key.map((k) => [k, row[k]]));
    fill(detail, "loading…");
    try {
      const answer = await api("POST", `/api/${path(table.name)}/query`, { json: { input: where, fields, limit: 1 } });
      if (!answer.data.length) return fill(detail, h("p", {}, "This row is gone."));
      showRow(answer.data[0]);
    } catch (error) {
      fill(detail, problem(error));
    }
  }

  function showRow(row) {
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
        h("table", { class: "grid small" }, h("thead", {}, h("tr", {}, names.map((n) => h("th", {}, n)))), h("tbody", {}, rows.map((x) => h("tr", {}, names.map((n) => cell(x[n])))))),
      );
    });
    fill(
      detail,
      h("h3", {}, `${table.name} ${table.primary_key.map((k) => text(row[k])).join(", ")}`),
      h("dl", { class: "fields" }, table.columns.map((c) => [h("dt", {}, c.name), h("dd", { class: row[c.name] === null ? "null" : null }, text(row[c.name]) ?? "NULL")])),
      may("write") && table.kind !== "view"
        ? h("div", { class: "tools" }, h("button", { type: "button", onclick: () => editor(row) }, "Edit"), h("button", { type: "button", class: "danger", onclick: () => remove(row) }, "Delete"))
        : null,
      related,
    );
  }

  async function remove(row) {
    if (!confirm(`Delete this row of ${table.name}?`)) return;
    try {
      await api("DELETE", `/api/${path(table.name)}/${keyOf(table, row)}`);
      fill(detail, h("div", { class: "ok", role: "status" }, "Deleted."));
      load();
    } catch (error) {
      fill(detail, problem(error));
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
      const shown = row ? text(current) ?? "" : "";
      const input =
        c.kind === "enum" && c.members
          ? select([["", "—"], ...c.members.map((m) => [m])], shown, { id: "f-" + c.name, name: c.name })
          : c.kind === "json" || (c.max_length && c.max_length > 255)
            ? h("textarea", { id: "f-" + c.name, name: c.name, rows: 3, value: shown })
            : h("input", { id: "f-" + c.name, name: c.name, type: "text", value: shown, placeholder: row ? null : c.auto_increment || c.has_default ? "(default)" : null });
      const isNull = c.nullable ? h("input", { type: "checkbox", "aria-label": `${c.name} is NULL`, checked: Boolean(row) && current === null }) : null;
      const hint = h("small", { class: "field-error" });
      inputs.set(c.name, { input, isNull, hint, column: c, before: shown, wasNull: Boolean(row) && current === null });
      form.append(h("div", { class: "field" }, h("label", { for: "f-" + c.name }, c.name, " ", h("span", { class: "type" }, c.type)), input, isNull ? h("label", { class: "nullable" }, isNull, " NULL") : null, hint));
    }
    form.append(h("div", { class: "tools" }, h("button", { type: "submit", class: "primary" }, row ? "Save" : "Create"), h("button", { type: "button", onclick: () => (row ? showRow(row) : fill(detail)) }, "Cancel")));
    fill(detail, h("h3", {}, row ? `Edit ${table.name} ${table.primary_key.map((k) => text(row[k])).join(", ")}` : `New ${table.name} row`), errors, form);

    async function save() {
      const values = {};
      for (const [name, f] of inputs) {
        f.hint.textContent = "";
        f.input.removeAttribute("aria-invalid");
        const nulled = f.isNull?.checked;
        if (row && nulled === f.wasNull && (nulled || f.input.value === f.before)) continue; // unchanged
        if (!row && !nulled && f.input.value === "") continue; // not given: the default
        if (nulled) values[name] = null;
        else if (f.column.kind === "json") {
          try {
            values[name] = JSON.parse(f.input.value);
          } catch {
            mark(name, "not JSON");
            return;
          }
        } else values[name] = f.input.value;
      }
      try {
        if (row) {
          if (!Object.keys(values).length) return showRow(row);
          const answer = await api("PUT", `/api/${path(table.name)}/${keyOf(table, row)}`, { json: { input: values } });
          showRow(answer.data);
        } else {
          const answer = await api("POST", `/api/${path(table.name)}`, { json: { input: values } });
          const created = Array.isArray(answer.data) ? answer.data[0] : answer.data;
          if (created) showRow(created);
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
