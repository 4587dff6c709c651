/* The page's charts: throughput, failures and run time per minute over the last hour, per queue.
 *
 * Plain JavaScript drawing inline SVG (no library, nothing from a CDN, no inline script: the CSP
 * forbids them), from GET /stats/timeseries?minutes=60, the same API any client may call. One
 * polyline per queue and chart, one point per minute; colours come from charts.css classes.
 * The key is the one offload.js keeps in this tab's sessionStorage.
 */
(function () {
  "use strict";

  var AUTH = document.body.dataset.auth === "on";
  var KEY_STORAGE = "offload.apiKey";  // offload.js's
  var MINUTES = 60;
  var REFRESH_MS = 10000;
  var WIDTH = 600, HEIGHT = 160, TOP = 14;
  var SVG = "http://www.w3.org/2000/svg";

  function $(id) { return document.getElementById(id); }
  if (!$("charts")) return;

  function key() {
    if (!AUTH) return "";
    try { return window.sessionStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; }
  }

  function message(text) {
    var box = $("charts-message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function node(name, attributes, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (attr) { el.setAttribute(attr, attributes[attr]); });
    if (text != null) el.textContent = text;
    return el;
  }

  function format(value) {
    return value >= 10 || value === Math.round(value) ? String(Math.round(value)) : value.toPrecision(2);
  }

  /* One chart: a polyline per queue over the same scale (0 to the largest value). */
  function draw(figure, data) {
    var metric = figure.dataset.metric;
    var svg = figure.querySelector("svg");
    var names = Object.keys(data.queues);
    var max = 0;
    names.forEach(function (name) {
      data.queues[name][metric].forEach(function (v) { if (v != null && v > max) max = v; });
    });
    var scale = max > 0 ? max : 1;
    var step = data.times.length > 1 ? WIDTH / (data.times.length - 1) : 0;
    svg.textContent = "";
    svg.appendChild(node("line", { "class": "axis", x1: 0, y1: HEIGHT, x2: WIDTH, y2: HEIGHT }));
    svg.appendChild(node("text", { "class": "max", x: 2, y: 11 }, "max " + format(max)));
    names.forEach(function (name) {
      var values = data.queues[name][metric];
      var total = 0;
      var points = values.map(function (v, i) {
        var value = v == null ? 0 : v;
        total += value;
        var y = HEIGHT - (value / scale) * (HEIGHT - TOP);
        return (i * step).toFixed(1) + "," + y.toFixed(1);
      });
      var line = node("polyline", { "class": "q-" + name, points: points.join(" ") });
      line.dataset.queue = name;
      line.dataset.points = String(values.length);
      line.dataset.total = format(total);
      var peak = Math.max.apply(null, values.map(function (v) { return v == null ? 0 : v; }));
      line.appendChild(node("title", {}, metric === "mean_run_seconds" ? name + ": up to " + format(peak) + " s"
        : name + ": " + format(total) + " in the hour"));
      svg.appendChild(line);
    });
    figure.dataset.max = format(max);
  }

  var seq = 0;

  function refresh() {
    var mine = ++seq;
    if (AUTH && !key()) {
      $("charts-wrap").hidden = true;
      message("Enter an API key to see the charts.");
      return Promise.resolve();
    }
    var headers = { "Accept": "application/json, application/problem+json" };
    if (key()) headers["Authorization"] = "Bearer " + key();
    return fetch("/stats/timeseries?minutes=" + MINUTES, { headers: headers, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (data) {
          if (mine !== seq) return;
          if (!response.ok || !data || !data.queues) {
            $("charts-wrap").hidden = true;
            message("Could not read the figures: " + ((data && (data.detail || data.title)) || response.status));
            return;
          }
          $("charts-wrap").hidden = false;
          message("");
          document.querySelectorAll("#charts figure.chart").forEach(function (figure) { draw(figure, data); });
          $("charts").dataset.updated = data.times[data.times.length - 1];
        });
      })
      .catch(function (err) { if (mine === seq) message("Could not reach offload: " + err.message); });
  }

  $("charts-refresh").addEventListener("click", refresh);
  var keyInput = $("api-key");
  if (keyInput) keyInput.addEventListener("change", refresh);
  setInterval(function () { if (document.visibilityState === "visible") refresh(); }, REFRESH_MS);
  refresh();
})();
