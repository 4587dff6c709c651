/* offload's banner on rq-dashboard's pages (app/web/dashboard.py, templates/dashboard_banner.html):
 * re-reads what offload holds back every few seconds, as the dashboard refreshes its tables, so a
 * queue resumed elsewhere does not stay "paused" here. Text only (textContent), never HTML. */
(function () {
  "use strict";

  var banner = document.getElementById("offload-banner");
  if (!banner || !window.fetch) return;
  var url = banner.dataset.stateUrl;
  var SHOWN_KEYS = 5;

  function keyLabel(row) {
    if (row.kind === "fair_share") return "the fair share of " + row.owner;
    return row.key + (row.owner ? " (" + row.owner + ")" : "");
  }

  function render(state) {
    document.getElementById("offload-unavailable").hidden = state.available;
    if (!state.available) return;
    var paused = document.getElementById("offload-paused");
    document.getElementById("offload-paused-names").textContent = state.paused.join(", ");
    paused.hidden = state.paused.length === 0;
    var waiting = document.getElementById("offload-waiting");
    document.getElementById("offload-waiting-total").textContent = String(state.waiting_total);
    var parts = state.waiting.slice(0, SHOWN_KEYS).map(function (row) {
      return keyLabel(row) + ": " + row.waiting + " waiting, " + row.active + " of " + row.limit + " running or queued";
    });
    if (state.waiting.length > SHOWN_KEYS) parts.push("and " + (state.waiting.length - SHOWN_KEYS) + " more keys");
    document.getElementById("offload-waiting-keys").textContent = parts.join("; ");
    waiting.hidden = state.waiting_total === 0;
  }

  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.json(); })
      .then(render)
      .catch(function () { /* the next round tries again */ })
      .then(function () { window.setTimeout(refresh, 3000); });
  }

  window.setTimeout(refresh, 3000);
})();
