// A file into a table: validate it first (the bad rows by line), then import it as a job and follow
// the job's events live, with cancel; the table's recent jobs below.

import { ApiError, api, events, path, problem, upload } from "./api.js";
import { fill, h, select } from "./dom.js";

const ACCEPT = ".csv,.tsv,.txt,.xlsx,.xls,.ods,.json,.jsonl,.ndjson,.parquet";

export function importView(main, table) {
  let file = null;
  const picker = h("input", { type: "file", accept: ACCEPT, "aria-label": "file", onchange: (e) => choose(e.target.files[0]) });
  const chosen = h("span", { class: "chosen" }, "no file chosen");
  const drop = h(
    "div",
    {
      class: "drop",
      ondragover: (e) => (e.preventDefault(), drop.classList.add("over")),
      ondragleave: () => drop.classList.remove("over"),
      ondrop: (e) => (e.preventDefault(), drop.classList.remove("over"), choose(e.dataTransfer.files[0])),
    },
    "Drop a file here (CSV, TSV, XLSX, XLS, ODS, JSON, JSON Lines, Parquet) or ",
    picker,
  );
  const mode = select([["insert", "insert (a duplicate key is an error)"], ["ignore", "ignore duplicates"], ["upsert", "upsert"]], "insert", { "aria-label": "mode" });
  const validateButton = h("button", { type: "button", disabled: true, onclick: () => validate() }, "Validate");
  const importButton = h("button", { type: "button", class: "primary", disabled: true, onclick: () => start() }, "Import as a job");
  const report = h("div", { class: "report" });
  const job = h("div", { class: "job" });
  const recent = h("div", { class: "recent" });

  fill(main, h("h3", {}, `Import into ${table.name}`), drop, h("div", { class: "tools" }, chosen, mode, validateButton, importButton), report, job, h("h4", {}, "Recent jobs"), recent);
  jobs();

  function choose(picked) {
    if (!picked) return;
    file = picked;
    fill(chosen, `${picked.name} (${picked.size.toLocaleString()} bytes)`);
    validateButton.disabled = importButton.disabled = false;
    fill(report);
  }

  // The file up, with its progress in `where` (a big file takes a while before the gateway answers).
  async function send(route, where, extra = "") {
    const form = new FormData();
    form.append("file", file, file.name);
    const bar = h("progress", { max: 1, value: 0 });
    const said = h("span", { class: "status" }, "uploading…");
    fill(where, h("div", { class: "tools" }, bar, said));
    return upload(`/api/batch/${route}?table=${encodeURIComponent(table.name)}&mode=${mode.value}${extra}`, form, (done, total) => {
      bar.max = total;
      bar.value = done;
      fill(said, done < total ? `uploading: ${Math.round((100 * done) / total)}%` : "uploaded: the gateway is reading it…");
    });
  }

  async function validate() {
    try {
      const answer = await send("validate", report);
      const r = answer.data;
      fill(
        report,
        h("p", { class: r.rows_failed ? "warn" : "ok", role: "status" }, `${r.rows_read} row(s) read: ${r.rows_valid} valid, ${r.rows_failed} invalid`),
        r.errors.length
          ? h(
              "table",
              { class: "grid small errors" },
              h("thead", {}, h("tr", {}, h("th", {}, "line"), h("th", {}, "column"), h("th", {}, "code"), h("th", {}, "reason"))),
              h("tbody", {}, r.errors.map((e) => h("tr", {}, h("td", {}, e.line ?? e.row ?? ""), h("td", {}, e.column ?? ""), h("td", {}, e.code ?? ""), h("td", {}, e.reason ?? "")))),
            )
          : null,
        r.errors_total > r.errors.length ? h("p", {}, `… and ${r.errors_total - r.errors.length} more`) : null,
      );
    } catch (error) {
      fill(report, problem(error));
    }
  }

  async function start() {
    try {
      const answer = await send("import", job, "&async=true");
      follow(answer.data);
    } catch (error) {
      fill(job, problem(error));
    }
  }

  async function follow(view) {
    const bar = h("progress", { max: 1, value: 0 });
    const line = h("span", { role: "status", class: "job-state" });
    const cancel = h("button", { type: "button", class: "danger", onclick: () => stop() }, "Cancel");
    const problems = h("div", {});
    const show = (v) => {
      if (v.bytes_total) (bar.max = v.bytes_total), (bar.value = v.bytes_done);
      fill(line, `job ${v.id}: ${v.state} — ${v.rows_written} written, ${v.rows_failed} failed of ${v.rows_read} read`);
      line.dataset.state = v.state;
      cancel.hidden = ["succeeded", "failed", "cancelled"].includes(v.state);
      if (v.errors?.length) fill(problems, h("ul", { class: "job-errors" }, v.errors.slice(0, 50).map((e) => h("li", {}, `${e.line !== undefined ? "line " + e.line : e.row !== undefined ? "row " + e.row : "?"}: ${e.column ? e.column + ": " : ""}${e.reason ?? e.code}`))));
      if (v.error) fill(problems, h("div", { class: "error" }, v.error.message || JSON.stringify(v.error)));
    };
    fill(job, h("div", { class: "tools" }, bar, line, cancel), problems);
    show(view);
    async function stop() {
      try {
        show((await api("DELETE", `/api/batch/jobs/${path(view.id)}`)).data);
      } catch (error) {
        problems.append(problem(error));
      }
    }
    try {
      for await (const { event, data } of events(`/api/batch/jobs/${path(view.id)}/events`)) {
        show(data);
        if (event === "end") break;
      }
    } catch (error) {
      problems.append(problem(error instanceof ApiError ? error : new Error("the job's event stream broke: " + error)));
    }
    jobs();
  }

  async function jobs() {
    try {
      const answer = await api("GET", `/api/batch/jobs?table=${encodeURIComponent(table.name)}&limit=10`);
      fill(
        recent,
        answer.data.length
          ? h(
              "table",
              { class: "grid small" },
              h("thead", {}, h("tr", {}, ["created", "source", "state", "written", "failed"].map((n) => h("th", {}, n)))),
              h("tbody", {}, answer.data.map((j) => h("tr", {}, h("td", {}, j.created_at), h("td", {}, j.source), h("td", {}, j.state), h("td", {}, j.rows_written), h("td", {}, j.rows_failed)))),
            )
          : h("p", { class: "empty" }, "No jobs yet."),
      );
    } catch (error) {
      fill(recent, problem(error));
    }
  }
}
