/* The page's search block: find jobs by id prefix, metadata key/value, error type and status
 * (GET /jobs with search parameters, page after page with "More"), and act on every match at
 * once with an admin key (POST /jobs/bulk, request after request until `next` is null).
 *
 * Plain JavaScript like offload.js, and the same public API any client uses. The API key, the
 * call, a problem's sentence, a message line and a table cell are api.js's. A found job's id
 * links to #job=<id>, which offload.js opens in the job panel.
 */
(function () {
  "use strict";

  var offload = window.offloadApi;  // api.js
  var api = offload.api, detail = offload.detail, cell = offload.cell;
  var FIELDS = ["id_prefix", "metadata_key", "metadata_value", "error_type", "status"];
  var BULK_STATUS = { retry: ["failed", "stopped", "canceled"], cancel: ["queued"], delete: ["finished", "failed", "canceled", "stopped"] };

  function $(id) { return document.getElementById(id); }
  var form = $("search-form");
  if (!form) return;

  function message(id, text) { offload.message($(id), text); }

  function values() {
    var found = {};
    FIELDS.forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value) found[name] = value;
    });
    return found;
  }

  function clearErrors() {
    form.querySelectorAll("[data-error-for]").forEach(function (box) { box.hidden = true; box.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (input) { input.removeAttribute("aria-invalid"); });
  }

  function showErrors(answer) {
    var errors = (answer.data && answer.data.errors) || [];
    var general = form.querySelector('[data-error-for="*"]');
    errors.forEach(function (error) {
      var box = form.querySelector('[data-error-for="' + error.field + '"]');
      if (!box) box = general;
      box.textContent = error.message;
      box.hidden = false;
      var input = form.elements[error.field];
      if (input) input.setAttribute("aria-invalid", "true");
    });
    if (!errors.length) { general.textContent = detail(answer); general.hidden = false; }
  }

  function row(job) {
    var tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    var idCell = document.createElement("td");
    var link = document.createElement("a");
    link.href = "#job=" + job.id;
    link.textContent = job.id.slice(0, 8);
    link.title = job.id;
    idCell.appendChild(link);
    tr.appendChild(idCell);
    tr.appendChild(cell(job.type));
    var status = cell("");
    var pill = document.createElement("span");
    pill.className = "status status-" + job.status;
    pill.textContent = job.status;
    status.appendChild(pill);
    tr.appendChild(status);
    tr.appendChild(cell(job.error ? job.error.type : "", "opt"));
    var created = new Date(job.created_at);
    tr.appendChild(cell(isNaN(created.getTime()) ? job.created_at : created.toLocaleString()));
    return tr;
  }

  var next = null;
  var shown = 0;
  var seq = 0;

  function load(url, append) {
    var mine = ++seq;
    return api("GET", url).then(function (answer) {
      if (mine !== seq) return;
      if (!answer.ok) {
        if (answer.status === 422) showErrors(answer); else message("search-message", detail(answer));
        return;
      }
      var body = $("search-body");
      if (!append) { body.textContent = ""; shown = 0; }
      answer.data.jobs.forEach(function (job) { body.appendChild(row(job)); shown += 1; });
      next = answer.data.next;
      $("search-wrap").hidden = shown === 0;
      $("search-more").hidden = !next;
      $("bulk").hidden = false;
      message("search-message", shown ? shown + (shown === 1 ? " job found" : " jobs found") + (next ? " so far." : ".")
        : (next ? "None in the newest jobs looked at; More looks further." : "No job matches."));
    }).catch(function () { message("search-message", "The server could not be reached."); });
  }

  function search() {
    clearErrors();
    var query = new URLSearchParams(values());
    query.set("limit", "20");
    return load("/jobs?" + query.toString(), false);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    message("bulk-message", "");
    search();
  });

  $("search-more").addEventListener("click", function () { if (next) load(next, true); });

  /* The bulk filter of the search form's fields; an action takes the status only if it is one of its own. */
  function bulkFilter(action) {
    var found = values();
    var filter = {};
    ["id_prefix", "error_type"].forEach(function (name) { if (found[name]) filter[name] = found[name]; });
    if (found.metadata_key && found.metadata_value !== undefined) {
      filter.metadata = {};
      filter.metadata[found.metadata_key] = found.metadata_value;
    } else if (found.metadata_key || found.metadata_value) {
      return "A bulk action needs both a metadata key and a value.";
    }
    if (found.status) {
      if (BULK_STATUS[action].indexOf(found.status) < 0) return "A bulk " + action + " does not take " + found.status + " jobs.";
      filter.status = found.status;
    }
    return filter;
  }

  function runBulk(action, filter, totals, cursor) {
    var body = { action: action, filter: filter, limit: 1000 };
    if (cursor) body.cursor = cursor;
    return api("POST", "/jobs/bulk", body).then(function (answer) {
      if (!answer.ok) { message("bulk-message", detail(answer)); return; }
      totals.matched += answer.data.matched;
      totals.done += answer.data.done;
      totals.skipped += answer.data.skipped;
      var verb = { retry: "retried", cancel: "canceled", delete: "deleted" }[action];
      message("bulk-message", totals.done + " " + verb + ", " + totals.skipped + " skipped of " + totals.matched + " matched" +
        (answer.data.next ? "…" : "."));
      if (answer.data.next) return runBulk(action, filter, totals, answer.data.next);
      search();  // show the jobs as they are now; the counts stay
    });
  }

  document.querySelectorAll("[data-bulk]").forEach(function (button) {
    button.addEventListener("click", function () {
      var action = button.dataset.bulk;
      var filter = bulkFilter(action);
      if (typeof filter === "string") { message("bulk-message", filter); return; }
      if (!window.confirm("Act on every job matching this search: " + action + "?")) return;
      message("bulk-message", "Working…");
      runBulk(action, filter, { matched: 0, done: 0, skipped: 0 }, null)
        .catch(function () { message("bulk-message", "The server could not be reached."); });
    });
  });
})();
