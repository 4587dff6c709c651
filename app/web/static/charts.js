/* The page's charts: throughput, failures and run time per minute over the last hour, per queue.
 *
 * Plain JavaScript drawing inline SVG (no library, nothing from a CDN, no inline script: the CSP
 * forbids them), from GET /stats/timeseries?minutes=60, the same API any client may call. One
 * line per queue and chart, one point per minute (the minute's start); a run time's line breaks
 * at the minutes in which no job ended. Colours come from charts.css classes. The key and the
 * call are api.js's.
 *
 * Each chart has its axes: the time along the bottom, in the browser's local time with the
 * offset from UTC said ("Local time (UTC+02:00)"), a tick every 5 to 60 minutes as the width
 * allows; the values up the side on round steps, with their unit ("jobs/min", "seconds").
 * The SVG is drawn in the pixels it is shown in (its viewBox is its size, redrawn when that
 * changes), so its text is never stretched. For assistive technology each SVG has a <title>
 * (what, which minutes, which time zone) and a <desc> (each queue's figures), and the figure
 * a "Table" the same numbers are in, minute by minute.
 */
(function () {
  "use strict";

  var offload = window.offloadApi;  // api.js
  var AUTH = offload.auth, key = offload.key;
  var MINUTES = 60;
  var REFRESH_MS = 10000;
  var FALLBACK_WIDTH = 600, FALLBACK_HEIGHT = 176;
  var FONT_PX = 11, CHAR_PX = 6.5;         // charts.css: .chart svg text is 11px
  var TOP = 22, RIGHT = 10, BOTTOM = 38;   // room for the unit, the time labels and the axis title
  var TICK_MINUTES = [5, 10, 15, 20, 30, 60];
  var MIN_TICK_GAP_PX = 46;                // "00:00" is ~30 px at 11px: leave air between labels
  var LABEL_GAP_PX = 10;                   // the least space between two time labels
  var MIN_LEFT = 30;                       // room for "0.5" or "100" beside the value axis
  var SVG = "http://www.w3.org/2000/svg";

  /* What each chart draws: its unit on the axis, its words for one queue, whether values are
   * counts (whole-number steps) and what an empty minute is. */
  var METRICS = {
    finished: { unit: "jobs/min", what: "Jobs finished per minute", counts: true },
    failed: { unit: "jobs/min", what: "Jobs failed per minute", counts: true },
    mean_run_seconds: { unit: "seconds", what: "Mean run time of the jobs that ended, per minute", counts: false },
  };

  function $(id) { return document.getElementById(id); }
  if (!$("charts")) return;

  function message(text) { offload.message($("charts-message"), text); }

  function node(name, attributes, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (attr) { el.setAttribute(attr, attributes[attr]); });
    if (text != null) el.textContent = text;
    return el;
  }

  function html(name, text, className) {
    var el = document.createElement(name);
    if (text != null) el.textContent = text;
    if (className) el.className = className;
    return el;
  }

  function format(value) {
    return value >= 10 || value === Math.round(value) ? String(Math.round(value)) : value.toPrecision(2);
  }

  // --- time ----------------------------------------------------------------------------------

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* "14:05", in the browser's time zone (24-hour: the labels stay short and unambiguous). */
  function clock(date) { return pad(date.getHours()) + ":" + pad(date.getMinutes()); }

  /* "UTC+02:00", "UTC-03:30", or "UTC" for the browser's offset at that moment. */
  function zone(date) {
    var offset = -date.getTimezoneOffset();
    if (!offset) return "UTC";
    var abs = Math.abs(offset);
    return "UTC" + (offset > 0 ? "+" : "-") + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
  }

  function timeTitle(date) {
    var name = zone(date);
    return name === "UTC" ? "Time (UTC)" : "Local time (" + name + ")";
  }

  /* "local time (UTC+02:00)", or "UTC". */
  function zonePhrase(date) {
    var name = zone(date);
    return name === "UTC" ? name : "local time (" + name + ")";
  }

  /* The indexes of the minutes that get a label: the local times on a whole number of `every`
   * minutes, with `every` the smallest step that leaves MIN_TICK_GAP_PX between labels. */
  function timeTicks(dates, step) {
    var every = TICK_MINUTES[TICK_MINUTES.length - 1];
    for (var i = 0; i < TICK_MINUTES.length; i++) {
      if (TICK_MINUTES[i] * step >= MIN_TICK_GAP_PX) { every = TICK_MINUTES[i]; break; }
    }
    var ticks = [];
    dates.forEach(function (date, index) {
      if ((date.getHours() * 60 + date.getMinutes()) % every === 0) ticks.push(index);
    });
    return ticks;
  }

  // --- values --------------------------------------------------------------------------------

  /* Round steps (1, 2 or 5 times a power of ten) from 0 to at least `max`, two to four of them;
   * counts step by whole numbers. */
  function valueTicks(max, counts) {
    var raw = (max > 0 ? max : 1) / 3;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / power;
    var step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
    if (counts) step = Math.max(1, step);
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    var top = Math.max(step, Math.ceil(max / step - 1e-9) * step);
    var ticks = [];
    for (var v = 0; v <= top + step / 2; v += step) ticks.push(Number(v.toFixed(decimals)));
    return { top: ticks[ticks.length - 1], ticks: ticks, decimals: decimals };
  }

  // --- one chart -----------------------------------------------------------------------------

  /* A sentence per queue for the SVG's <desc> and the line's tooltip. */
  function summary(metric, name, values, dates) {
    var peak = 0, at = -1, total = 0;
    values.forEach(function (v, i) {
      if (v == null) return;
      total += v;
      if (v > peak) { peak = v; at = i; }
    });
    if (metric === "mean_run_seconds") {
      return at < 0 ? name + ": no job ended" : name + ": up to " + format(peak) + " s (at " + clock(dates[at]) + ")";
    }
    if (!total) return name + ": none";
    return name + ": " + format(total) + " in the hour, at most " + format(peak) + " in a minute (at " + clock(dates[at]) + ")";
  }

  /* One chart: axes, then a polyline per queue over the same scale (0 to a round value at or
   * above the largest one). */
  function draw(figure, data) {
    var metric = figure.dataset.metric;
    var spec = METRICS[metric];
    var svg = figure.querySelector("svg");
    var box = svg.getBoundingClientRect();
    var width = Math.round(box.width) || FALLBACK_WIDTH, height = Math.round(box.height) || FALLBACK_HEIGHT;
    var names = Object.keys(data.queues);
    var dates = data.times.map(function (iso) { return new Date(iso); });
    var last = dates[dates.length - 1];
    var max = 0;
    names.forEach(function (name) {
      data.queues[name][metric].forEach(function (v) { if (v != null && v > max) max = v; });
    });
    var scale = valueTicks(max, spec.counts);
    var labels = scale.ticks.map(function (v) { return v ? v.toFixed(scale.decimals) : "0"; });
    var longest = Math.max.apply(null, labels.map(function (t) { return t.length; }));
    var left = Math.max(MIN_LEFT, Math.ceil(longest * CHAR_PX) + 8);  // the same for short labels: the charts line up
    var bottom = height - BOTTOM;
    var plotWidth = Math.max(10, width - left - RIGHT);
    var step = dates.length > 1 ? plotWidth / (dates.length - 1) : 0;
    function x(i) { return left + i * step; }
    function y(v) { return bottom - (v / scale.top) * (bottom - TOP); }

    svg.textContent = "";
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var id = svg.id;
    var range = clock(dates[0]) + " to " + clock(last);
    svg.appendChild(node("title", { id: id + "-title" }, spec.what + ", per queue, " + range + " " + zonePhrase(last)));
    svg.appendChild(node("desc", { id: id + "-desc" }, names.map(function (name) {
      return summary(metric, name, data.queues[name][metric], dates);
    }).join("; ") + ". Scale 0 to " + labels[labels.length - 1] + " " + spec.unit + "."));

    // The value axis: a line per step, its value at the left, the unit above.
    var values = node("g", { "class": "y-axis" });
    scale.ticks.forEach(function (v, i) {
      values.appendChild(node("line", { "class": v ? "grid" : "axis", x1: left, x2: left + plotWidth, y1: y(v), y2: y(v) }));
      var label = node("text", { x: left - 5, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" }, labels[i]);
      label.dataset.value = labels[i];
      values.appendChild(label);
    });
    values.appendChild(node("text", { "class": "unit", x: 0, y: FONT_PX }, spec.unit));
    svg.appendChild(values);

    // The time axis: a tick and a label on round local times, the time zone below.
    var times = node("g", { "class": "x-axis" });
    var free = -Infinity;  // where the next label may start, clear of the one before
    timeTicks(dates, step).forEach(function (index) {
      var at = x(index);
      times.appendChild(node("line", { "class": "tick", x1: at, x2: at, y1: bottom, y2: bottom + 4 }));
      var text = clock(dates[index]);
      var size = text.length * CHAR_PX, half = size / 2;
      // Kept inside the chart; a label pushed against the one before it is left out (its tick stays).
      var anchor = at - half < 0 ? "start" : at + half > width ? "end" : "middle";
      var start = anchor === "start" ? at : anchor === "end" ? at - size : at - half;
      if (start < free) return;
      free = start + size + LABEL_GAP_PX;
      var label = node("text", { x: at, y: bottom + 6 + FONT_PX, "text-anchor": anchor }, text);
      label.dataset.time = data.times[index];
      times.appendChild(label);
    });
    times.appendChild(node("text", { "class": "title", x: left + plotWidth, y: height - 3, "text-anchor": "end" },
      timeTitle(last)));
    svg.appendChild(times);

    names.forEach(function (name) {
      var series = data.queues[name][metric];
      var total = 0;
      series.forEach(function (v) { total += v || 0; });
      var line = spec.counts ? countLine(series, x, y) : meanLine(series, x, y, step);
      line.setAttribute("class", "series q-" + name);
      line.dataset.queue = name;
      line.dataset.points = String(series.length);
      line.dataset.total = format(total);
      line.appendChild(node("title", {}, summary(metric, name, series, dates)));
      svg.appendChild(line);
    });
    svg.dataset.top = TOP;
    svg.dataset.bottom = bottom;
    figure.dataset.max = format(max);
    figure.dataset.scaleTop = labels[labels.length - 1];
    table(figure, spec, names, data, dates);
  }

  /* A count per minute: a polyline through every minute (a minute with none is a true 0). */
  function countLine(series, x, y) {
    return node("polyline", { points: series.map(function (v, i) {
      return x(i).toFixed(1) + "," + y(v || 0).toFixed(1);
    }).join(" ") });
  }

  /* A mean per minute: a minute in which no job ended has no mean, so the line breaks there
   * instead of falling to "0 seconds"; a minute alone between gaps is a dash its width. */
  function meanLine(series, x, y, step) {
    var d = [];
    series.forEach(function (v, i) {
      if (v == null) return;
      var alone = series[i - 1] == null && series[i + 1] == null;
      var at = x(i).toFixed(1) + "," + y(v).toFixed(1);
      var dash = Math.max(step, 6);
      if (alone) d.push("M" + (x(i) - dash / 2).toFixed(1) + "," + y(v).toFixed(1) + "h" + dash.toFixed(1));
      else d.push((series[i - 1] == null ? "M" : "L") + at);
    });
    return node("path", { d: d.join(" ") });
  }

  /* The same figures as a table (in the figure's "Table" disclosure), one row per minute that
   * has any; the empty ones are said, not listed. */
  function table(figure, spec, names, data, dates) {
    var holder = figure.querySelector(".chart-table");
    if (!holder) return;
    var metric = figure.dataset.metric;
    var t = html("table");
    t.appendChild(html("caption", spec.what + " (" + spec.unit + "), minutes in " + zonePhrase(dates[dates.length - 1])));
    var head = html("tr");
    var th = html("th", "Minute");
    th.scope = "col";
    head.appendChild(th);
    names.forEach(function (name) {
      var col = html("th", name, "num");
      col.scope = "col";
      head.appendChild(col);
    });
    t.appendChild(html("thead")).appendChild(head);
    var body = t.appendChild(html("tbody"));
    dates.forEach(function (date, i) {
      var row = names.map(function (name) { return data.queues[name][metric][i]; });
      if (!row.some(function (v) { return v; })) return;
      var tr = html("tr");
      var when = html("th", clock(date));
      when.scope = "row";
      tr.appendChild(when);
      row.forEach(function (v) { tr.appendChild(html("td", v == null ? "none" : format(v), "num")); });
      body.appendChild(tr);
    });
    var note = html("p", body.rows.length ? "Minutes not listed had none."
      : "None in the last " + dates.length + " minutes.", "hint");
    // Replaced only when its figures change, not on every refresh: a screen reader in the table
    // keeps its place.
    var figures = t.textContent + note.textContent;
    if (holder.dataset.figures === figures) return;
    holder.dataset.figures = figures;
    holder.textContent = "";
    holder.appendChild(t);
    holder.appendChild(note);
  }

  // --- refresh -------------------------------------------------------------------------------

  var seq = 0, shown = null, drawnWidth = 0;

  function drawAll() {
    document.querySelectorAll("#charts figure.chart").forEach(function (figure) { draw(figure, shown); });
    drawnWidth = $("charts-wrap").getBoundingClientRect().width;
  }

  function refresh() {
    var mine = ++seq;
    if (AUTH && !key()) {
      $("charts-wrap").hidden = true;
      message("Enter an API key to see the charts.");
      return Promise.resolve();
    }
    return offload.api("GET", "/stats/timeseries?minutes=" + MINUTES)
      .then(function (answer) {
        var data = answer.data;
        if (mine !== seq) return;
        if (!answer.ok || !data || !data.queues) {
          $("charts-wrap").hidden = true;
          message("Could not read the figures: " + ((data && (data.detail || data.title)) || answer.status));
          return;
        }
        $("charts-wrap").hidden = false;
        message("");
        shown = data;
        drawAll();
        $("charts").dataset.updated = data.times[data.times.length - 1];
      })
      .catch(function (err) { if (mine === seq) message("Could not reach offload: " + err.message); });
  }

  // A rotated phone or a resized window: the axes are drawn for a width, so draw them again.
  if (window.ResizeObserver) {
    new ResizeObserver(function () {
      if (shown && !$("charts-wrap").hidden && $("charts-wrap").getBoundingClientRect().width !== drawnWidth) drawAll();
    }).observe($("charts-wrap"));
  }

  $("charts-refresh").addEventListener("click", refresh);
  var keyInput = $("api-key");
  if (keyInput) keyInput.addEventListener("change", refresh);
  setInterval(function () { if (document.visibilityState === "visible") refresh(); }, REFRESH_MS);
  refresh();
})();
