/* The batch block of offload's page: one text per line, sent as one batch of count_words jobs.
 *
 * POST /jobs/batch with every non-empty line as an item, then GET /batches/{id} again after
 * each answer's Retry-After until the batch is done, showing its jobs' counts by status. The
 * API key (when the server wants one) is the one offload.js keeps in this tab's sessionStorage.
 */
(function () {
  "use strict";

  var form = document.getElementById("batch-form");
  if (!form) return;
  var AUTH = document.body.dataset.auth === "on";
  var KEY_STORAGE = "offload.apiKey";
  var STATUSES = ["queued", "scheduled", "deferred", "started", "finished", "failed", "canceled", "stopped"];
  var texts = document.getElementById("bt-texts");
  var errorBox = document.getElementById("bt-texts-error");
  var panel = document.getElementById("batch-result");
  var polling = null;

  function key() {
    if (!AUTH) return "";
    try { return window.sessionStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; }
  }

  function call(method, path, payload) {
    var headers = { "Accept": "application/json, application/problem+json" };
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    if (key()) headers["Authorization"] = "Bearer " + key();
    return fetch(path, {
      method: method, headers: headers, cache: "no-store", credentials: "same-origin",
      body: payload === undefined ? undefined : JSON.stringify(payload)
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        return { status: response.status, data: data || {}, retryAfter: parseInt(response.headers.get("Retry-After"), 10) };
      });
    });
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
    if (text) texts.setAttribute("aria-invalid", "true"); else texts.removeAttribute("aria-invalid");
  }

  /* "line 3: text: ..." for each item the server refused; lines counts the textarea's lines. */
  function refusals(errors, lines) {
    return errors.map(function (error) {
      var match = /^jobs\.(\d+)\.(.*)$/.exec(error.field || "");
      return match ? "line " + lines[+match[1]] + ": " + match[2] + ": " + error.message : error.message;
    }).join("; ");
  }

  function render(batch) {
    panel.hidden = false;
    var link = document.getElementById("batch-link");
    link.href = batch.links.self;
    document.getElementById("batch-id").textContent = batch.id;
    var ended = ["finished", "failed", "canceled", "stopped"].reduce(function (sum, s) { return sum + batch.counts[s]; }, 0);
    var state = document.getElementById("batch-state");
    state.textContent = batch.done ? "done: all " + batch.total + " jobs have ended" : ended + " of " + batch.total + " jobs have ended";
    state.className = "status " + (batch.done ? "status-finished" : "status-started");
    var list = document.getElementById("batch-counts");
    list.textContent = "";
    STATUSES.forEach(function (status) {
      if (!batch.counts[status]) return;
      var dt = document.createElement("dt");
      dt.textContent = status;
      var dd = document.createElement("dd");
      dd.dataset.status = status;
      dd.textContent = String(batch.counts[status]);
      list.appendChild(dt);
      list.appendChild(dd);
    });
  }

  /* The page's list of recent jobs (offload.js) shows the batch's jobs too. */
  function refreshRecent() {
    var button = document.getElementById("recent-refresh");
    if (button) button.click();
  }

  function poll(path, seconds, token) {
    polling = token;
    setTimeout(function () {
      if (polling !== token) return;
      call("GET", path).then(function (answer) {
        if (polling !== token) return;
        if (answer.status !== 200) { showError(answer.data.detail || "The server answered " + answer.status + "."); return; }
        render(answer.data);
        if (!answer.data.done) poll(path, answer.retryAfter || 1, token);
        else refreshRecent();
      }).catch(function () { if (polling === token) poll(path, 2, token); });
    }, seconds * 1000);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    showError("");
    var lines = [];
    var jobs = [];
    texts.value.split("\n").forEach(function (line, number) {
      if (!line.trim()) return;
      lines.push(number + 1);
      jobs.push({ type: "count_words", text: line });
    });
    if (!jobs.length) { showError("Write at least one line of text."); texts.focus(); return; }
    var button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    call("POST", "/jobs/batch", { jobs: jobs }).then(function (answer) {
      if (answer.status !== 202) {
        var p = answer.data;
        showError(Array.isArray(p.errors) && p.errors.length ? refusals(p.errors, lines) : (p.detail || "The server answered " + answer.status + "."));
        return;
      }
      var refused = answer.data.results.filter(function (r) { return r.status !== 202; });
      showError(refused.length ? refused.length + " line(s) refused: " + refused.map(function (r) {
        return refusals(r.problem.errors.map(function (e) { return { field: "jobs." + r.index + "." + e.field, message: e.message }; }), lines);
      }).join("; ") : "");
      render(answer.data.batch);
      refreshRecent();
      if (!answer.data.batch.done) poll(answer.data.batch.links.self, answer.retryAfter || 1, {});
    }).catch(function (err) {
      showError("Could not reach offload: " + err.message);
    }).then(function () { button.disabled = false; });
  });
})();
