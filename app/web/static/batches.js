/* The batch block of offload's page: one value per line, sent as one batch of jobs of a task, each
 * line the value of one of its text fields (the task and the field picked from GET /tasks).
 *
 * POST /jobs/batch with every non-empty line as an item, then GET /batches/{id} again after
 * each answer's Retry-After until the batch is done, showing its jobs' counts by status. The
 * API key (when the server wants one) and the call are api.js's.
 */
(function () {
  "use strict";

  var form = document.getElementById("batch-form");
  if (!form) return;
  var STATUSES = ["queued", "scheduled", "deferred", "started", "finished", "failed", "canceled", "stopped"];
  var texts = document.getElementById("bt-texts");
  var typePicker = document.getElementById("bt-type");
  var fieldPicker = document.getElementById("bt-field");
  var textFields = {};  // type -> the names of its fields that take a line of text
  var errorBox = document.getElementById("bt-texts-error");
  var panel = document.getElementById("batch-result");
  var polling = null;

  /* api.js's call, with the body as {} when there is none and the Retry-After seconds. */
  function call(method, path, payload) {
    return window.offloadApi.api(method, path, payload).then(function (answer) {
      return { status: answer.status, data: answer.data || {}, retryAfter: parseInt(answer.headers.get("Retry-After"), 10) };
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

  /* The tasks that have a text field (a string, however it is entered); their text fields. */
  function offer(list) {
    textFields = {};
    typePicker.textContent = "";
    list.forEach(function (task) {
      var names = window.offloadForms.describe(task).filter(function (field) {
        return ["string", "longtext", "upload"].indexOf(field.kind) >= 0;
      }).sort(function (a, b) { return (b.required ? 1 : 0) - (a.required ? 1 : 0); }).map(function (field) { return field.name; });
      if (!names.length) return;
      textFields[task.type] = names;
      typePicker.appendChild(new Option(task.type, task.type));
    });
    typePicker.disabled = fieldPicker.disabled = !typePicker.options.length;
    if (!typePicker.options.length) typePicker.appendChild(new Option("(no task with a text field)", ""));
    offerFields();
  }

  function offerFields() {
    fieldPicker.textContent = "";
    (textFields[typePicker.value] || []).forEach(function (name) { fieldPicker.appendChild(new Option(name, name)); });
  }

  function loadTasks(again) {
    window.offloadApi.tasks(again).then(function (answer) {
      if (answer.ok && answer.data && Array.isArray(answer.data.tasks)) offer(answer.data.tasks);
    }).catch(function () { /* the job form above says why */ });
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
      var job = { type: typePicker.value };
      job[fieldPicker.value] = line;
      jobs.push(job);
    });
    if (!typePicker.value || !fieldPicker.value) { showError("No task to make jobs of."); return; }
    if (!jobs.length) { showError("Write at least one line."); texts.focus(); return; }
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

  typePicker.addEventListener("change", offerFields);
  loadTasks();
  // With API keys the tasks may need the key: ask again once one is entered.
  var key = document.getElementById("api-key");
  if (key) key.addEventListener("change", function () { if (!typePicker.value) loadTasks(); });
})();
