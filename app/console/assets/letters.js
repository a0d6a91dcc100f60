// Dead letters: the messages broker streams could not apply, with the reason, newest first.

import { api, problem } from "./api.js";
import { fill, h } from "./dom.js";

// A long payload folded: its first 200 characters, the rest on a click.
function clamped(text) {
  if (text.length <= 200) return h("code", {}, text);
  return h("details", {}, h("summary", {}, h("code", {}, text.slice(0, 200) + "…")), h("code", {}, text));
}

export function lettersView(main) {
  const list = h("div", {});
  const more = h("div", { class: "pager" });
  const body = h("tbody", {});
  fill(main, h("h3", {}, "Dead letters"), h("p", { class: "hint" }, "Messages from Kafka, RabbitMQ or NATS that could not be applied (tables you may import into)."), list, more);

  async function page(before) {
    try {
      const answer = await api("GET", `/api/batch/dead-letters?limit=50${before ? "&before=" + before : ""}`);
      if (!before) {
        fill(
          list,
          answer.data.length
            ? h("table", { class: "grid letters" }, h("thead", {}, h("tr", {}, ["when", "source", "table", "position", "reason", "payload"].map((n) => h("th", {}, n)))), body)
            : h("p", { class: "empty" }, "No dead letters."),
        );
        body.replaceChildren();
      }
      for (const l of answer.data) {
        const payload = l.payload_encoding === "base64" ? `(base64) ${l.payload}` : l.payload;
        body.append(h("tr", {}, h("td", {}, l.created_at), h("td", {}, l.source), h("td", {}, l.table), h("td", {}, l.position), h("td", { class: "reason" }, l.reason), h("td", { class: "payload" }, clamped(payload + (l.truncated ? " …" : "")))));
      }
      const last = answer.data.at(-1);
      fill(more, answer.data.length === 50 ? h("button", { type: "button", onclick: () => page(last.id) }, "Older") : null);
    } catch (error) {
      fill(list, problem(error));
    }
  }
  page(null);
}
