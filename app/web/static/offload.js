/* offload's page: submit a job with the JSON API and watch it until it ends.
 *
 * Plain JavaScript, no build step, no dependencies. It talks to the same API as any client:
 * GET /tasks for the job form (one per task, its fields made from the task's JSON Schema by
 * taskforms.js: the page knows no task of its own), POST /jobs (JSON, or multipart/form-data
 * when a file was chosen), GET /jobs/{id}/events (events.js) or else GET /jobs/{id}?wait=N in a
 * loop until the job is terminal, GET /jobs?limit=20.
 * With API keys on, the key lives in this tab's sessionStorage only and goes out as
 * "Authorization: Bearer <key>".
 */
(function () {
  "use strict";

  var offload = window.offloadApi;  // api.js: the key, the calls
  var AUTH = offload.auth;
  var WAIT = parseInt(document.body.dataset.wait, 10) || 10;
  var TERMINAL = ["finished", "failed", "canceled", "stopped"];
  var RECENT_LIMIT = 20;

  function $(id) { return document.getElementById(id); }
  function isTerminal(status) { return TERMINAL.indexOf(status) >= 0; }
  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  // --- the API key (sessionStorage only) and HTTP: api.js ----------------------------------

  var getKey = offload.key, setKey = offload.setKey, api = offload.api, textCell = offload.cell;

  /* A sentence for a failed call: the problem's detail, and when to try again. */
  function describeProblem(answer) {
    var text = offload.detail(answer);
    var retryAfter = answer.headers && answer.headers.get("Retry-After");
    if ((answer.status === 429 || answer.status === 503) && retryAfter) {
      text += " Try again in " + retryAfter + " s.";
    }
    return text;
  }

  function showKeyProblem(answer) {
    if (!AUTH || (answer.status !== 401 && answer.status !== 403)) return false;
    var message = !getKey() ? "Enter an API key." : describeProblem(answer);
    var box = document.querySelector('[data-error-for="api_key"]');
    var input = $("api-key");
    if (box) { box.textContent = message; box.hidden = false; }
    if (input) input.setAttribute("aria-invalid", "true");
    return true;
  }

  function clearKeyProblem() {
    var box = document.querySelector('[data-error-for="api_key"]');
    if (box) { box.textContent = ""; box.hidden = true; }
    var input = $("api-key");
    if (input) input.removeAttribute("aria-invalid");
  }

  // --- the job form: one for every task, made from GET /tasks (taskforms.js) -----------------

  var form = $("job-form");
  var picker = $("task-type");
  var optionsBox = $("job-options");
  var submitButton = form.querySelector('button[type="submit"]');
  var formError = form.querySelector('[data-error-for="*"]');
  var tasks = {};          // type -> the task of GET /tasks
  var built = {};          // type -> offloadForms.build(): its fieldset, kept while the page lives
  var OPTION_NAMES = ["queue", "delay_seconds", "timeout_seconds", "max_retries"];

  var shown = "";          // the type whose form is on show
  function currentTask() { return tasks[picker.value] || null; }
  function currentForm() { return built[picker.value] || null; }

  /* The fieldset of the chosen task; the others stay in the page, hidden and disabled, with what
   * was typed in them. */
  function showTask(type) {
    var task = tasks[type];
    if (!task || type === shown) return;
    shown = type;
    picker.value = type;
    if (!built[type]) {
      built[type] = window.offloadForms.build(task, "f-" + type);
      $("task-fields").appendChild(built[type].element);
    }
    Object.keys(built).forEach(function (name) {
      var element = built[name].element;
      element.hidden = name !== type;
      element.disabled = name !== type;
    });
    $("task-description").textContent = task.description || "";
    $("task-example").hidden = !task.example;
    $("task-reset").hidden = !built[type].fields.length;
    // The options start from the task's own defaults (the queue chosen, the others greyed in).
    var defaults = task.defaults || {};
    form.elements.queue.value = defaults.queue || "default";
    form.elements.timeout_seconds.placeholder = defaults.timeout_seconds != null ? String(defaults.timeout_seconds) : "";
    form.elements.max_retries.placeholder = defaults.max_retries != null ? String(defaults.max_retries) : "";
    clearErrors();
    try { window.sessionStorage.setItem("offload.task", type); } catch (e) { /* not kept: fine */ }
  }

  function loadTasks(again) {
    return offload.tasks(again).then(function (answer) {
      if (!answer.ok || !answer.data || !Array.isArray(answer.data.tasks)) {
        showKeyProblem(answer);
        picker.textContent = "";
        picker.appendChild(new Option("(no tasks)", ""));
        offload.message(formError, "Could not load the tasks: " + describeProblem(answer));
        return;
      }
      var list = answer.data.tasks;
      var before = picker.value;
      tasks = {};
      picker.textContent = "";
      list.forEach(function (task) {
        tasks[task.type] = task;
        picker.appendChild(new Option(task.type, task.type));
      });
      picker.disabled = !list.length;
      submitButton.disabled = !list.length;
      if (!list.length) { offload.message(formError, "This service offers no tasks."); return; }
      offload.message(formError, "");
      var remembered = null;
      try { remembered = window.sessionStorage.getItem("offload.task"); } catch (e) { /* none */ }
      showTask(tasks[before] ? before : tasks[remembered] ? remembered : list[0].type);
    }).catch(function (err) {
      offload.message(formError, "Could not reach offload for the tasks: " + err.message);
    });
  }

  function clearErrors() {
    form.querySelectorAll("[data-error-for]").forEach(function (box) {
      box.textContent = "";
      box.hidden = true;
    });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  /* The job options the user set; the queue only when it is not the task's own. */
  function readOptions() {
    var options = {};
    var task = currentTask() || {};
    var queue = form.elements.queue.value;
    if (queue && queue !== ((task.defaults || {}).queue || "default")) options.queue = queue;
    ["delay_seconds", "timeout_seconds", "max_retries"].forEach(function (name) {
      var text = form.elements[name].value.trim();
      if (text === "") return;
      var number = Number(text);
      options[name] = isFinite(number) ? number : text;
    });
    return options;
  }

  /* The body of POST /jobs: JSON, or multipart/form-data when a file was chosen (the file as the
   * part of its field's name, the other values as text parts: a list as repeated parts, an
   * object as JSON). */
  function buildBody(fields, options) {
    var values = Object.assign({ type: picker.value }, fields.values, options);
    if (!Object.keys(fields.files).length) return values;
    var body = new FormData();
    Object.keys(values).forEach(function (name) {
      var value = values[name];
      if (value === null) return;
      if (Array.isArray(value)) value.forEach(function (item) { body.append(name, partText(item)); });
      else body.append(name, partText(value));
    });
    Object.keys(fields.files).forEach(function (name) {
      body.append(name, fields.files[name], fields.files[name].name);
    });
    return body;
  }

  function partText(value) {
    return value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  /* Where a field's error goes, and the control to mark: the task's fields, then the options. */
  function errorPlace(name) {
    var task = currentForm();
    var box = task && task.errorBox(name);
    if (box) return { box: box, input: task.control(name) };
    if (OPTION_NAMES.indexOf(name) >= 0 || name === "type") {
      return { box: form.querySelector('[data-error-for="' + name + '"]'), input: form.elements[name], option: name !== "type" };
    }
    return null;
  }

  /* Put each of the problem's field errors next to its field; whatever has no field of its own
   * goes to the form's error line. Focus moves to the first field in error. */
  function showProblem(answer) {
    var p = answer.data || {};
    var errors = Array.isArray(p.errors) ? p.errors : [];
    var unplaced = [];
    var firstInvalid = null;
    errors.forEach(function (error) {
      var field = String(error.field || "");
      var place = field ? errorPlace(field.split(".")[0]) : null;
      if (!place || !place.box) {
        unplaced.push(field ? field + ": " + error.message : error.message);
        return;
      }
      var message = field.indexOf(".") > 0 ? field.slice(field.indexOf(".") + 1) + ": " + error.message : error.message;
      place.box.textContent = place.box.hidden ? message : place.box.textContent + "; " + message;
      place.box.hidden = false;
      if (place.option) optionsBox.open = true;
      if (place.input && place.input.setAttribute) {
        place.input.setAttribute("aria-invalid", "true");
        if (!firstInvalid) firstInvalid = place.input;
      }
    });
    var keyProblem = showKeyProblem(answer);
    if (unplaced.length || !errors.length) {
      var text = errors.length ? (p.detail || "The job is not valid") + ": " + unplaced.join("; ")
                               : describeProblem(answer);
      if (keyProblem) text += " (see the API key field above)";
      offload.message(formError, text);
    }
    if (firstInvalid) {
      // Centre the field, so that its error (below it) is on screen too.
      firstInvalid.focus({ preventScroll: true });
      firstInvalid.scrollIntoView({ block: "center" });
    }
    else if (keyProblem && $("api-key")) $("api-key").focus();
  }

  function submitJob() {
    if (form.dataset.busy === "1" || !currentForm()) return;
    clearErrors();
    var fields = currentForm().read();
    if (fields.problems.length) {  // JSON that does not parse: said beside its field, nothing sent
      showProblem({ status: 422, data: { detail: "The form is not valid", errors: fields.problems } });
      return;
    }
    form.dataset.busy = "1";
    form.setAttribute("aria-busy", "true");
    submitButton.disabled = true;
    api("POST", "/jobs", buildBody(fields, readOptions())).then(function (answer) {
      if (answer.status === 202 && answer.data && answer.data.id) {
        clearKeyProblem();
        watch(answer.data);
        refreshRecent();
        revealJob();
      } else {
        showProblem(answer);
      }
    }).catch(function (err) {
      offload.message(formError, "Could not reach offload: " + err.message);
    }).then(function () {
      form.dataset.busy = "";
      form.removeAttribute("aria-busy");
      submitButton.disabled = false;
    });
  }

  function wireForm() {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submitJob();
    });
    picker.addEventListener("change", function () { showTask(picker.value); });
    $("task-example").addEventListener("click", function () {
      var task = currentTask();
      if (!task || !currentForm()) return;
      currentForm().fill(task.example || {});
      clearErrors();
    });
    $("task-reset").addEventListener("click", function () {
      if (currentForm()) currentForm().reset();
      clearErrors();
    });
    // Enter submits from a one-line field (the browser does that); Ctrl/Cmd+Enter from a textarea.
    form.addEventListener("keydown", function (event) {
      if (event.target.tagName === "TEXTAREA" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    // A field's error goes away once the user edits it (or picks a file for it).
    var edited = function (event) {
      var el = event.target;
      var holder = el.closest("[data-field]") || el.closest(".field");
      var box = holder && holder.querySelector("[data-error-for]");
      if (box) { box.hidden = true; box.textContent = ""; }
      if (holder) holder.querySelectorAll("[aria-invalid]").forEach(function (one) { one.removeAttribute("aria-invalid"); });
    };
    form.addEventListener("input", edited);
    form.addEventListener("change", edited);
  }

  // --- the watched job -----------------------------------------------------------------------

  var current = null;      // the job resource on show
  var watcher = null;      // AbortController of the running watch loop

  function label(key) {
    var text = String(key).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function formatValue(value) {
    if (Array.isArray(value)) return value.join(", ");
    if (value !== null && typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  /* Local time; with short, only the time of day for today's timestamps. */
  function formatTime(iso, short) {
    if (!iso) return "";
    var date = new Date(iso);
    if (isNaN(date.getTime())) return iso;
    if (short && date.toDateString() === new Date().toDateString()) return date.toLocaleTimeString();
    return date.toLocaleString();
  }

  function render(job) {
    current = job;
    $("job-empty").hidden = true;
    $("job-problem").hidden = true;
    $("job-details").hidden = false;
    $("job-id").textContent = job.id;
    $("job-type").textContent = job.type || "";
    var status = $("job-status");
    status.textContent = job.status;
    status.className = "status status-" + job.status;
    $("job-queue").textContent = job.queue || "";
    $("job-attempts").textContent = String(job.attempts) + (job.max_retries ? " (up to " + (job.max_retries + 1) + ")" : "");
    // A job with a concurrency_key may stay queued while others of its key hold the slots: say so.
    $("job-concurrency").textContent = job.concurrency_key ? job.concurrency_key + " (at most " + job.concurrency_limit + " at once)" : "";
    document.querySelectorAll(".job-concurrency").forEach(function (el) { el.hidden = !job.concurrency_key; });
    $("job-trace").textContent = job.trace_id || "";

    var progress = $("job-progress");
    if (job.progress && job.progress.total && !isTerminal(job.status)) {
      progress.max = job.progress.total;
      progress.value = job.progress.done;
      progress.hidden = false;
    } else {
      progress.hidden = true;
    }

    var resultList = $("job-result-list");
    resultList.textContent = "";
    if (job.result && typeof job.result === "object") {
      Object.keys(job.result).forEach(function (key) {
        var dt = document.createElement("dt");
        dt.textContent = label(key);
        var dd = document.createElement("dd");
        dd.dataset.key = key;
        dd.textContent = formatValue(job.result[key]);
        resultList.appendChild(dt);
        resultList.appendChild(dd);
      });
      $("job-result").hidden = false;
    } else {
      $("job-result").hidden = true;
    }

    if (job.error) {
      $("job-error-type").textContent = job.error.type;
      $("job-error-message").textContent = job.error.message;
      $("job-error").hidden = false;
      $("job-error").querySelector("h3").textContent = isTerminal(job.status) ? "Error" : "Last error (retrying)";
    } else {
      $("job-error").hidden = true;
    }

    var self = (job.links && job.links.self) || "/jobs/" + encodeURIComponent(job.id);
    $("job-json").href = self;
    // The server's links name the actions the job's status allows now (app/jobs/resource.py links).
    $("job-cancel").hidden = !(job.links && job.links.cancel);
    $("job-retry").hidden = !(job.links && job.links.retry);
    $("job-raw").textContent = JSON.stringify(job, null, 2);
    markRecentRow(job);
  }

  function showJobProblem(text) {
    var box = $("job-problem");
    box.textContent = text;
    box.hidden = false;
  }

  function setWatching(on) {
    $("job-waiting").hidden = !on;
    $("job-panel").setAttribute("aria-busy", on ? "true" : "false");
  }

  /* Show the job, then follow its events live, or hold GET /jobs/{id}?wait=N until it is
   * terminal. A new watch ends the previous one. Network trouble is retried with a growing pause. */
  function watch(job) {
    if (watcher) watcher.abort();
    var control = new AbortController();
    watcher = control;
    render(job);
    try { history.replaceState(null, "", "#job=" + encodeURIComponent(job.id)); } catch (e) { /* ignore */ }
    var failures = 0;
    // Live, through GET /jobs/{id}/events (events.js); the ?wait= loop below is the fallback.
    var live = !isTerminal(job.status) && window.OffloadEvents && window.OffloadEvents.follow(job.id, {
      key: getKey(),
      signal: control.signal,
      status: render,
      progress: function (progress) { render(Object.assign({}, current, { progress: progress })); },
      end: function (final) { render(final); step(); },
      fallback: function () { $("job-panel").dataset.watch = "wait"; step(); }
    });
    $("job-panel").dataset.watch = live ? "events" : "wait";
    if (live) { setWatching(true); return; }

    function step() {
      if (control.signal.aborted) return;
      if (isTerminal(current.status)) {
        setWatching(false);
        refreshRecent();
        return;
      }
      setWatching(true);
      var started = Date.now();
      api("GET", "/jobs/" + encodeURIComponent(job.id) + "?wait=" + WAIT, undefined, control.signal)
        .then(function (answer) {
          if (control.signal.aborted) return;
          if (answer.status === 200 && answer.data) {
            failures = 0;
            render(answer.data);
            // The server holds the request until the job ends or WAIT passes; never spin faster than 1/s.
            var pause = isTerminal(answer.data.status) ? 0 : Math.max(0, 1000 - (Date.now() - started));
            return sleep(pause).then(step);
          }
          if ([401, 403, 404, 422].indexOf(answer.status) >= 0) {
            showKeyProblem(answer);
            setWatching(false);
            showJobProblem(describeProblem(answer));
            return;
          }
          failures += 1;
          showJobProblem(describeProblem(answer) + " Still watching…");
          var retryAfter = parseFloat(answer.headers.get("Retry-After")) || 0;
          return sleep(Math.max(retryAfter * 1000, backoff(failures))).then(step);
        })
        .catch(function (err) {
          if (control.signal.aborted || err.name === "AbortError") return;
          failures += 1;
          showJobProblem("Lost contact with offload (" + err.message + "). Still watching…");
          return sleep(backoff(failures)).then(step);
        });
    }
    step();
  }

  /* In the one-column layout the job panel is below the forms: bring it into view. */
  function revealJob() {
    var panel = $("job");
    var top = panel.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight * 0.6) panel.scrollIntoView({ block: "start" });
  }

  function backoff(failures) { return Math.min(15000, 500 * Math.pow(2, failures)); }

  function control(action) {
    if (!current) return;
    var job = current;
    var url = (job.links && job.links[action]) || "/jobs/" + encodeURIComponent(job.id) + "/" + action;
    api("POST", url).then(function (answer) {
      if (answer.status === 202 && answer.data) {
        watch(answer.data);
        refreshRecent();
      } else {
        showKeyProblem(answer);
        showJobProblem(describeProblem(answer));
      }
    }).catch(function (err) { showJobProblem("Could not reach offload: " + err.message); });
  }

  // --- recent jobs ---------------------------------------------------------------------------

  var recentSeq = 0;

  function recentMessage(text) {
    var box = $("recent-message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function statusBadge(status) {
    var span = document.createElement("span");
    span.className = "status status-" + status;
    span.textContent = status;
    return span;
  }

  function recentRow(job) {
    var row = document.createElement("tr");
    row.dataset.jobId = job.id;
    var idCell = document.createElement("td");
    idCell.className = "c-id";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "link job-link";
    button.textContent = job.id;
    button.title = "Watch job " + job.id;
    button.addEventListener("click", function () { watch(job); $("job-heading").scrollIntoView({ block: "start" }); });
    idCell.appendChild(button);
    var cells = [
      idCell,
      textCell(job.type, "c-type"),
      (function () { var td = document.createElement("td"); td.className = "c-status status-cell"; td.appendChild(statusBadge(job.status)); return td; })(),
      textCell(job.queue, "opt"),
      textCell(String(job.attempts), "opt num"),
      (function () {
        var td = document.createElement("td");
        td.className = "c-created";
        var time = document.createElement("time");
        time.dateTime = job.created_at || "";
        time.textContent = formatTime(job.created_at, true);
        time.title = formatTime(job.created_at);
        td.appendChild(time);
        return td;
      })()
    ];
    cells.forEach(function (cell) { row.appendChild(cell); });
    if (current && current.id === job.id) row.classList.add("current");
    return row;
  }

  function markRecentRow(job) {
    document.querySelectorAll("#recent-body tr").forEach(function (row) {
      var match = row.dataset.jobId === job.id;
      row.classList.toggle("current", match);
      if (match) {
        var cell = row.querySelector(".status-cell");
        if (cell) { cell.textContent = ""; cell.appendChild(statusBadge(job.status)); }
      }
    });
  }

  function refreshRecent() {
    var seq = ++recentSeq;
    var tbody = $("recent-body");
    if (AUTH && !getKey()) {
      tbody.textContent = "";
      $("recent-wrap").hidden = true;
      recentMessage("Enter an API key to see the recent jobs.");
      return Promise.resolve();
    }
    return api("GET", "/jobs?limit=" + RECENT_LIMIT).then(function (answer) {
      if (seq !== recentSeq) return;  // a newer refresh is on its way
      if (!answer.ok || !answer.data) {
        if (showKeyProblem(answer)) {  // another key's jobs must not stay on show
          tbody.textContent = "";
          $("recent-wrap").hidden = true;
        }
        recentMessage("Could not list jobs: " + describeProblem(answer));
        return;
      }
      var jobs = answer.data.jobs || [];
      tbody.textContent = "";
      jobs.forEach(function (job) { tbody.appendChild(recentRow(job)); });
      $("recent-wrap").hidden = !jobs.length;
      recentMessage(jobs.length ? "" : "No jobs yet.");
    }).catch(function (err) {
      if (seq === recentSeq) recentMessage("Could not reach offload: " + err.message);
    });
  }

  // --- start ---------------------------------------------------------------------------------

  function wireKey() {
    var input = $("api-key");
    if (!input) return;
    input.value = getKey();
    input.addEventListener("input", function () {
      setKey(input.value.trim());
      clearKeyProblem();
    });
    input.addEventListener("change", function () {
      refreshRecent();
      if (!Object.keys(tasks).length) loadTasks();  // the tasks may have needed the key
    });
    $("key-form").addEventListener("submit", function (event) {
      event.preventDefault();
      refreshRecent();
      if (!Object.keys(tasks).length) loadTasks();
    });
    $("api-key-forget").addEventListener("click", function () {
      input.value = "";
      setKey("");
      clearKeyProblem();
      refreshRecent();
      input.focus();
    });
  }

  function resumeFromHash() {
    var match = /^#job=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
    if (!match) return;
    if (AUTH && !getKey()) return;
    api("GET", "/jobs/" + match[1]).then(function (answer) {
      if (answer.status === 200 && answer.data) watch(answer.data);
    }).catch(function () { /* nothing to resume */ });
  }

  wireForm();
  loadTasks();
  wireKey();
  $("job-cancel").addEventListener("click", function () { control("cancel"); });
  $("job-retry").addEventListener("click", function () { control("retry"); });
  $("recent-refresh").addEventListener("click", refreshRecent);
  refreshRecent();
  resumeFromHash();
  window.addEventListener("hashchange", resumeFromHash);  // #job=<id> links (search.js)
})();
