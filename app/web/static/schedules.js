/* The page's schedules block: list schedules, enable or disable one, delete one, create one.
 *
 * Plain JavaScript like offload.js, and the same public API any client uses: GET /schedules,
 * POST /schedules, PATCH and DELETE /schedules/{id}. The API key, the calls and the
 * messages are api.js's. The list refreshes every few seconds while the tab is visible, so
 * "next run" and "last job" follow the ticks.
 */
(function () {
  "use strict";

  var offload = window.offloadApi;  // api.js
  var AUTH = offload.auth, key = offload.key, api = offload.api, detail = offload.detail, cell = offload.cell;
  var REFRESH_MS = 5000;

  function $(id) { return document.getElementById(id); }
  if (!$("schedules")) return;

  function message(text) { offload.message($("schedules-message"), text); }

  function when(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    return isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  // --- the list ------------------------------------------------------------------------------

  var seq = 0;

  function row(schedule) {
    var tr = document.createElement("tr");
    tr.dataset.scheduleId = schedule.id;
    var label = schedule.name || schedule.id.slice(0, 8);
    tr.appendChild(cell(label));
    tr.appendChild(cell(schedule.cron ? schedule.cron + " (UTC)" : "every " + schedule.every_seconds + " s", "c-runs"));
    tr.appendChild(cell((schedule.job && schedule.job.type) || "", "opt"));

    var next = cell("", "c-next");
    if (schedule.enabled && schedule.next_run_at) {
      var time = document.createElement("time");
      time.dateTime = schedule.next_run_at;
      time.textContent = when(schedule.next_run_at);
      time.title = schedule.next_run_at;
      next.appendChild(time);
    } else {
      next.textContent = "paused";
    }
    tr.appendChild(next);

    var last = cell("", "opt c-last");
    if (schedule.last_job_id) {
      var link = document.createElement("a");
      link.href = "/jobs/" + encodeURIComponent(schedule.last_job_id);
      link.textContent = "job";
      link.title = schedule.last_job_id;
      last.appendChild(link);
    }
    if (schedule.last_error) last.appendChild(document.createTextNode(" ⚠ " + schedule.last_error.message));
    tr.appendChild(last);

    var toggleCell = cell("");
    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "secondary schedule-toggle";
    toggle.setAttribute("role", "switch");
    toggle.setAttribute("aria-checked", schedule.enabled ? "true" : "false");
    toggle.setAttribute("aria-label", (schedule.enabled ? "Disable " : "Enable ") + label);
    toggle.textContent = schedule.enabled ? "On" : "Off";
    toggle.addEventListener("click", function () { change(schedule, { enabled: !schedule.enabled }, toggle); });
    toggleCell.appendChild(toggle);
    tr.appendChild(toggleCell);

    var removeCell = cell("");
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary schedule-delete";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", "Delete " + label);
    remove.addEventListener("click", function () { destroy(schedule, remove); });
    removeCell.appendChild(remove);
    tr.appendChild(removeCell);
    return tr;
  }

  function refresh() {
    var mine = ++seq;
    if (AUTH && !key()) {
      $("schedules-body").textContent = "";
      $("schedules-wrap").hidden = true;
      message("Enter an API key to see the schedules.");
      return Promise.resolve();
    }
    return api("GET", "/schedules?limit=50").then(function (answer) {
      if (mine !== seq) return;  // a newer refresh is on its way
      if (!answer.ok || !answer.data) {
        $("schedules-body").textContent = "";
        $("schedules-wrap").hidden = true;
        message("Could not list schedules: " + detail(answer));
        return;
      }
      var schedules = answer.data.schedules || [];
      var body = $("schedules-body");
      body.textContent = "";
      schedules.forEach(function (schedule) { body.appendChild(row(schedule)); });
      $("schedules-wrap").hidden = !schedules.length;
      message(schedules.length ? "" : "No schedules yet.");
    }).catch(function (err) {
      if (mine === seq) message("Could not reach offload: " + err.message);
    });
  }

  function change(schedule, patch, button) {
    button.disabled = true;
    api("PATCH", "/schedules/" + encodeURIComponent(schedule.id), patch).then(function (answer) {
      if (!answer.ok) message("Could not change the schedule: " + detail(answer));
      return refresh();
    }).catch(function (err) { message("Could not reach offload: " + err.message); })
      .then(function () { button.disabled = false; });
  }

  function destroy(schedule, button) {
    button.disabled = true;
    api("DELETE", "/schedules/" + encodeURIComponent(schedule.id)).then(function (answer) {
      if (!answer.ok) message("Could not delete the schedule: " + detail(answer));
      return refresh();
    }).catch(function (err) { message("Could not reach offload: " + err.message); })
      .then(function () { button.disabled = false; });
  }

  // --- the form ------------------------------------------------------------------------------

  var form = $("schedule-form");

  function kind() { return form.elements.kind.value; }

  function syncKind() {
    form.querySelectorAll("[data-for-kind]").forEach(function (holder) {
      holder.hidden = holder.dataset.forKind !== kind();
    });
  }

  function clearErrors() {
    form.querySelectorAll("[data-error-for]").forEach(function (box) { box.textContent = ""; box.hidden = true; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  function fieldError(name, text) {
    var box = form.querySelector('[data-error-for="' + name + '"]');
    var input = form.elements[name];
    if (!box || (input && input.closest("[hidden]"))) return false;
    box.textContent = box.hidden ? text : box.textContent + "; " + text;
    box.hidden = false;
    if (input) input.setAttribute("aria-invalid", "true");
    return true;
  }

  /* The problem's field errors beside their fields ("job.text" goes to the job's box, with its
   * path); the rest, or the detail, on the form's error line. */
  function showProblem(answer) {
    var p = answer.data || {};
    var errors = Array.isArray(p.errors) ? p.errors : [];
    var rest = [];
    errors.forEach(function (error) {
      var field = String(error.field || "");
      var name = field.split(".")[0];
      var text = name === "job" && field !== "job" ? field.slice(4) + ": " + error.message : error.message;
      if (!fieldError(name, text)) rest.push(field ? field + ": " + error.message : error.message);
    });
    if (rest.length || !errors.length) {
      var box = form.querySelector('[data-error-for="*"]');
      box.textContent = errors.length ? (p.detail || "Not valid") + ": " + rest.join("; ") : detail(answer);
      box.hidden = false;
    }
    var first = form.querySelector('[aria-invalid="true"]');
    if (first) first.focus();
  }

  function payload() {
    var body = {};
    var name = form.elements.name.value.trim();
    if (name) body.name = name;
    if (kind() === "cron") body.cron = form.elements.cron.value;
    else {
      var text = form.elements.every_seconds.value;
      body.every_seconds = /^\d+$/.test(text) ? Number(text) : text;
    }
    try { body.job = JSON.parse(form.elements.job.value); } catch (e) { return { error: "not valid JSON: " + e.message }; }
    return { body: body };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (form.dataset.busy === "1") return;
    clearErrors();
    var built = payload();
    if (built.error) { fieldError("job", built.error); form.elements.job.focus(); return; }
    var button = form.querySelector('button[type="submit"]');
    form.dataset.busy = "1";
    button.disabled = true;
    api("POST", "/schedules", built.body).then(function (answer) {
      if (answer.status === 201) {
        form.elements.name.value = "";
        return refresh();
      }
      showProblem(answer);
    }).catch(function (err) {
      offload.message(form.querySelector('[data-error-for="*"]'), "Could not reach offload: " + err.message);
    }).then(function () {
      form.dataset.busy = "";
      button.disabled = false;
    });
  });
  form.addEventListener("input", function (event) {
    var el = event.target;
    if (!el.name) return;
    var box = form.querySelector('[data-error-for="' + el.name + '"]');
    if (box) { box.hidden = true; box.textContent = ""; }
    el.removeAttribute("aria-invalid");
  });
  form.elements.kind.addEventListener("change", syncKind);
  syncKind();

  /* The job starts as the example of the first task that has one (GET /tasks), until it is edited. */
  function offerExample() {
    offload.tasks().then(function (answer) {
      var list = (answer.ok && answer.data && answer.data.tasks) || [];
      var task = list.filter(function (t) { return t.example; })[0];
      if (task && !form.elements.job.value) {
        form.elements.job.value = JSON.stringify(Object.assign({ type: task.type }, task.example));
      }
    }).catch(function () { /* the field stays empty */ });
  }
  offerExample();

  // --- start ---------------------------------------------------------------------------------

  $("schedules-refresh").addEventListener("click", refresh);
  var keyInput = $("api-key");
  if (keyInput) keyInput.addEventListener("change", function () { refresh(); offerExample(); });
  var forget = $("api-key-forget");
  if (forget) forget.addEventListener("click", function () { setTimeout(refresh, 0); });
  setInterval(function () { if (document.visibilityState === "visible") refresh(); }, REFRESH_MS);
  refresh();
})();
