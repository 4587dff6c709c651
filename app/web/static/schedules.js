/* The page's schedules block: list schedules, pause or resume one, delete one, create one.
 *
 * Plain JavaScript like offload.js, and the same public API any client uses: GET /schedules,
 * POST /schedules, PATCH and DELETE /schedules/{id}. The API key, the calls and the
 * messages are api.js's. The list refreshes every few seconds while the tab is visible, so
 * "next run" and "last job" follow the ticks.
 *
 * A schedule's state and what to do about it are two things, as the queues block shows them:
 * a badge says the state ("active" or "paused") and a button says the action ("Pause" or
 * "Resume", named "Pause <schedule>" for assistive technology). The list is drawn again on
 * every refresh; the control that had the focus gets it back in the new row, so a keyboard
 * user can pause, resume and delete without being sent to the top of the page.
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
      next.textContent = "none";
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

    // The state, then the action that changes it.
    var stateCell = cell("", "c-state");
    var badge = document.createElement("span");
    badge.className = "status schedule-state " + (schedule.enabled ? "status-finished" : "status-canceled");
    badge.textContent = schedule.enabled ? "active" : "paused";
    stateCell.appendChild(badge);
    var toggle = control("toggle", schedule.enabled ? "Pause" : "Resume", label);
    toggle.addEventListener("click", function () { change(schedule, label, toggle); });
    stateCell.appendChild(toggle);
    tr.appendChild(stateCell);

    var removeCell = cell("");
    var remove = control("delete", "Delete", label);
    remove.addEventListener("click", function () { destroy(schedule, label, remove); });
    removeCell.appendChild(remove);
    tr.appendChild(removeCell);
    return tr;
  }

  /* A row's button: its text the action, its name the action and the schedule ("Pause heartbeat"). */
  function control(kind, action, label) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary schedule-" + kind;
    button.dataset.control = kind;
    button.textContent = action;
    button.setAttribute("aria-label", action + " " + label);
    return button;
  }

  /* A control that is busy keeps the focus (a disabled button would drop it): aria-disabled says
   * so, and a second press is ignored. The focus itself survives the redraw (restoreFocus). */
  function busy(button, on) {
    if (on) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
  }

  function isBusy(button) { return button.getAttribute("aria-disabled") === "true"; }

  // --- the focus across redraws --------------------------------------------------------------

  function focusedControl() {
    var el = document.activeElement;
    var tr = el && el.dataset && el.dataset.control && el.closest("#schedules-body tr");
    if (!tr) return null;
    return { id: tr.dataset.scheduleId, control: el.dataset.control };
  }

  /* The same control in the same schedule's new row; when the schedule is gone (deleted), the
   * block's heading: not the next row's button, where a second Enter would delete another. */
  function restoreFocus(where) {
    if (!where) return;
    var tr = $("schedules-body").querySelector('tr[data-schedule-id="' + CSS.escape(where.id) + '"]');
    var target = tr ? tr.querySelector('[data-control="' + where.control + '"]') : $("schedules-heading");
    if (target) target.focus();
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
      var focus = focusedControl();
      body.textContent = "";
      schedules.forEach(function (schedule) { body.appendChild(row(schedule)); });
      $("schedules-wrap").hidden = !schedules.length;
      message(schedules.length ? "" : "No schedules yet.");
      restoreFocus(focus);
    }).catch(function (err) {
      if (mine === seq) message("Could not reach offload: " + err.message);
    });
  }

  /* Pause an active schedule or resume a paused one; the outcome is said on the status line. */
  function change(schedule, label, button) {
    if (isBusy(button)) return;
    var enabled = !schedule.enabled;
    act(button, "PATCH", schedule, { enabled: enabled }, "Could not change the schedule: ",
      enabled ? label + " resumed: its next run is shown." : label + " paused: no job until it is resumed.");
  }

  function destroy(schedule, label, button) {
    if (isBusy(button)) return;
    act(button, "DELETE", schedule, undefined, "Could not delete the schedule: ", label + " deleted.");
  }

  function act(button, method, schedule, patch, failed, done) {
    busy(button, true);
    var ok = false, outcome = "";
    api(method, "/schedules/" + encodeURIComponent(schedule.id), patch).then(function (answer) {
      ok = answer.ok;
      outcome = ok ? done : failed + detail(answer);
      return refresh();
    }).catch(function (err) { outcome = "Could not reach offload: " + err.message; })
      .then(function () {
        busy(button, false);
        // Said after the refresh (which clears the line); "No schedules yet." stays when it is true.
        if (outcome && (!ok || $("schedules-message").hidden)) message(outcome);
      });
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
