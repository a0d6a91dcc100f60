// The JSON filter language (docs/api.md) as a form: conditions (column, operator, value) in AND/OR
// groups, groups within groups. toFilter() gives what POST /query and POST /export take.

import { h, fill, select } from "./dom.js";

// name, what it takes, label (tests/integration/test_console.py holds this list to app/query/operators.py)
export const OPERATORS = [
  ["eq", "value", "="],
  ["ne", "value", "≠"],
  ["gt", "value", ">"],
  ["gte", "value", "≥"],
  ["lt", "value", "<"],
  ["lte", "value", "≤"],
  ["like", "pattern", "like"],
  ["in", "list", "in a,b,…"],
  ["nin", "list", "not in a,b,…"],
  ["between", "pair", "between a,b"],
  ["is_null", "flag", "is null"],
  ["fts", "words", "full-text"],
  ["bfts", "words", "full-text (boolean)"],
];
const TAKES = Object.fromEntries(OPERATORS.map(([name, takes]) => [name, takes]));

export const group = (op = "and") => ({ op, items: [] });
export const condition = (column) => ({ column, operator: "eq", value: "" });

function operand(item) {
  const takes = TAKES[item.operator];
  if (takes === "list") return item.value.split(",").map((v) => v.trim());
  if (takes === "pair") return item.value.split(",", 2).map((v) => v.trim());
  if (takes === "flag") return item.value !== "false";
  return item.value;
}

// The group as the JSON filter, or null when it holds no condition.
export function toFilter(node) {
  if (!("items" in node)) return { [node.column]: { [node.operator]: operand(node) } };
  const parts = node.items.map(toFilter).filter(Boolean);
  if (!parts.length) return null;
  return { [node.op]: parts };
}

export function conditions(node) {
  return "items" in node ? node.items.reduce((n, item) => n + conditions(item), 0) : 1;
}

// The form for `root`, redrawn in `where` on each change; `apply` runs the filter.
export function builder(where, root, columns, apply) {
  const redraw = () => fill(where, drawGroup(root, null));

  function drawGroup(node, parent) {
    const box = h("fieldset", { class: "group" });
    const head = h(
      "div",
      { class: "group-head" },
      select([["and", "all of (AND)"], ["or", "any of (OR)"]], node.op, {
        "aria-label": "combine",
        onchange: (e) => (node.op = e.target.value),
      }),
      h("button", { type: "button", onclick: () => (node.items.push(condition(columns[0].name)), redraw()) }, "+ condition"),
      h("button", { type: "button", onclick: () => (node.items.push(group(node.op === "and" ? "or" : "and")), redraw()) }, "+ group"),
      parent
        ? h("button", { type: "button", class: "quiet", onclick: () => (parent.items.splice(parent.items.indexOf(node), 1), redraw()) }, "remove group")
        : null,
    );
    box.append(head);
    for (const item of node.items) box.append("items" in item ? drawGroup(item, node) : drawCondition(item, node));
    return box;
  }

  function drawCondition(item, parent) {
    const value = h("input", {
      type: "text",
      "aria-label": "value",
      value: item.value,
      placeholder: placeholder(item.operator),
      oninput: (e) => (item.value = e.target.value),
      onkeydown: (e) => e.key === "Enter" && (e.preventDefault(), apply()),
    });
    return h(
      "div",
      { class: "condition" },
      select(columns.map((c) => [c.name]), item.column, { "aria-label": "column", onchange: (e) => (item.column = e.target.value) }),
      select(OPERATORS.map(([name, , label]) => [name, label]), item.operator, {
        "aria-label": "operator",
        onchange: (e) => ((item.operator = e.target.value), (value.placeholder = placeholder(item.operator))),
      }),
      value,
      h("button", { type: "button", class: "quiet", "aria-label": "remove condition", onclick: () => (parent.items.splice(parent.items.indexOf(item), 1), redraw()) }, "×"),
    );
  }

  redraw();
}

function placeholder(operator) {
  return { list: "a,b,c", pair: "low,high", flag: "true or false", pattern: "A%", words: "words" }[TAKES[operator]] || "value";
}
