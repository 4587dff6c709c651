/* The page's queues block: each queue's depths, paused state and workers, with a pause or
 * resume button (admin keys; a client key is told so).
 *
 * Plain JavaScript like offload.js, and the same public API any client uses: GET /queues,
 * POST /queues/{name}/pause and /resume, GET /concurrency (the concurrency keys and fair shares
 * in use, with their slots). The API key, the calls and the
 * messages are api.js's. The table refreshes every few seconds while the tab is visible.
 */
(function () {
  "use strict";

  var offload = window.offloadApi;  // api.js
  var AUTH = offload.auth, key = offload.key, api = offload.api, detail = offload.detail, cell = offload.cell;
  var REFRESH_MS = 3000;

  function $(id) { return document.getElementById(id); }
  if (!$("queues")) return;

  function message(text) { offload.message($("queues-message"), text); }

  function row(queue) {
    var tr = document.createElement("tr");
    tr.dataset.queue = queue.name;
    tr.appendChild(cell(queue.name, "c-name"));
    tr.appendChild(cell(queue.paused ? "paused" : "running", "c-state " + (queue.paused ? "status-canceled" : "status-finished")));
    tr.appendChild(cell(queue.queued, "c-queued"));
    tr.appendChild(cell(queue.scheduled, "opt"));
    tr.appendChild(cell(queue.started, "c-started"));
    tr.appendChild(cell(queue.failed, "opt"));
    tr.appendChild(cell(queue.workers, "c-workers"));
    var actionCell = cell("");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    var action = queue.paused ? "resume" : "pause";
    button.textContent = queue.paused ? "Resume" : "Pause";
    button.setAttribute("aria-label", (queue.paused ? "Resume " : "Pause ") + queue.name);
    button.addEventListener("click", function () { act(queue.links[action], button); });
    actionCell.appendChild(button);
    tr.appendChild(actionCell);
    return tr;
  }

  function concurrencyRow(entry) {
    var tr = document.createElement("tr");
    tr.appendChild(cell(entry.kind === "fair_share" ? "fair share" : entry.key, "c-key"));
    tr.appendChild(cell(entry.owner || "", "opt"));
    tr.appendChild(cell(entry.limit, "c-limit"));
    tr.appendChild(cell(entry.active, "c-active"));
    tr.appendChild(cell(entry.waiting, "c-waiting"));
    return tr;
  }

  function refreshConcurrency() {
    return api("GET", "/concurrency").then(function (answer) {
      var keys = answer.ok && answer.data ? answer.data.keys || [] : [];
      var body = $("concurrency-body");
      body.textContent = "";
      keys.forEach(function (entry) { body.appendChild(concurrencyRow(entry)); });
      $("concurrency-wrap").hidden = !keys.length;
      offload.message($("concurrency-message"), answer.ok ? (keys.length ? "" : "No job waits on a concurrency key or fair share.")
        : "Could not list the concurrency keys: " + detail(answer));
    });
  }

  var seq = 0;

  function refresh() {
    var mine = ++seq;
    if (AUTH && !key()) {
      $("queues-body").textContent = "";
      $("queues-wrap").hidden = true;
      message("Enter an API key to see the queues.");
      return Promise.resolve();
    }
    return api("GET", "/queues").then(function (answer) {
      if (mine !== seq) return;  // a newer refresh is on its way
      if (!answer.ok || !answer.data) {
        $("queues-wrap").hidden = true;
        message("Could not list the queues: " + detail(answer));
        return;
      }
      var body = $("queues-body");
      body.textContent = "";
      (answer.data.queues || []).forEach(function (queue) { body.appendChild(row(queue)); });
      $("queues-wrap").hidden = false;
      if ($("queues-message").dataset.sticky !== "1") message("");
      return refreshConcurrency();
    }).catch(function (err) {
      if (mine === seq) message("Could not reach offload: " + err.message);
    });
  }

  function act(path, button) {
    button.disabled = true;
    $("queues-message").dataset.sticky = "";
    api("POST", path).then(function (answer) {
      if (!answer.ok) {
        message("Could not change the queue: " + detail(answer));
        $("queues-message").dataset.sticky = "1";  // stays until the next click
      } else {
        message("");
      }
      return refresh();
    }).catch(function (err) { message("Could not reach offload: " + err.message); })
      .then(function () { button.disabled = false; });
  }

  $("queues-refresh").addEventListener("click", refresh);
  var keyInput = $("api-key");
  if (keyInput) keyInput.addEventListener("change", refresh);
  var forget = $("api-key-forget");
  if (forget) forget.addEventListener("click", function () { setTimeout(refresh, 0); });
  setInterval(function () { if (document.visibilityState === "visible") refresh(); }, REFRESH_MS);
  refresh();
})();
