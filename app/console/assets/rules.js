// A table's rules: its JSON Schema versions, the current one edited and stored as a new version (the
// gateway's 400 shown in place), and a roll back to the version before.

import { ApiError, api, parse, path, problem } from "./api.js";
import { fill, h } from "./dom.js";

export function rulesView(main, table) {
  const may = table.access.includes("write") && table.kind !== "view";
  // disabled until the current version is shown, so nothing typed before is overwritten by it
  const editor = h("textarea", { class: "schema", rows: 18, spellcheck: false, "aria-label": "JSON Schema", readonly: !may, disabled: true });
  const messages = h("div", { class: "messages" });
  const versions = h("div", {});
  const rollBackButton = h("button", { type: "button", class: "danger", hidden: true, onclick: () => rollBack() }, "Roll back");
  const url = `/api/schemas/${path(table.name)}`;
  fill(
    main,
    h("h3", {}, `Rules for ${table.name}`),
    h("p", { class: "hint" }, "A JSON Schema (Draft 2020-12) every row written to the table must meet, on every write path."),
    messages,
    editor,
    may
      ? h(
          "div",
          { class: "tools" },
          h("button", { type: "button", class: "primary", onclick: () => store() }, "Store as a new version"),
          rollBackButton,
        )
      : null,
    h("h4", {}, "Versions"),
    versions,
  );

  function show(rules, message) {
    editor.disabled = false;
    rollBackButton.hidden = !rules;
    editor.value = rules ? JSON.stringify(rules.schema, null, 2) : '{\n  "type": "object",\n  "properties": {}\n}';
    fill(
      versions,
      rules
        ? h(
            "table",
            { class: "grid small" },
            h("thead", {}, h("tr", {}, ["version", "created", "by", "removed"].map((n) => h("th", {}, n)))),
            h("tbody", {}, rules.versions.map((v) => h("tr", { class: v.version === rules.version ? "current" : null }, h("td", {}, v.version), h("td", {}, v.created_at), h("td", {}, v.created_by), h("td", {}, v.removed ? "yes" : "")))),
          )
        : h("p", { class: "empty" }, "No rules: every row the table's columns take is accepted."),
    );
    fill(messages, message ? h("div", { class: "ok", role: "status" }, message) : null);
  }

  async function load(message) {
    try {
      show((await api("GET", url)).data, message);
    } catch (error) {
      if (error instanceof ApiError && error.code === "schema_not_found") show(null, message);
      else fill(messages, problem(error));
    }
  }

  async function store() {
    let schema;
    try {
      schema = parse(editor.value); // integers past 2^53 kept as written
    } catch (error) {
      fill(messages, problem(new Error("not JSON: " + error.message)));
      return;
    }
    try {
      const answer = await api("PUT", url, { json: schema });
      show(answer.data, answer.message);
    } catch (error) {
      fill(messages, problem(error));
    }
  }

  async function rollBack() {
    if (!confirm(`Remove the current rules version of ${table.name}? The one before becomes current.`)) return;
    try {
      const answer = await api("DELETE", url);
      await load(answer.message);
    } catch (error) {
      fill(messages, problem(error));
    }
  }

  load();
}
