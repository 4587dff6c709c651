/* offload's page: watch a job live through GET /jobs/{id}/events (Server-Sent Events).
 *
 * OffloadEvents.follow(jobId, options) calls options.status(job), options.progress({done, total})
 * and, once the job is terminal, options.end(job). Whatever goes wrong (the server's streams are
 * all in use: 503; a proxy that cuts every stream; no EventSource) it calls options.fallback()
 * once instead, and the page goes back to GET /jobs/{id}?wait=.
 *
 * Without API keys it uses EventSource, which reconnects by itself when the server closes a
 * stream at its maximum lifetime (sending Last-Event-ID). With API keys it cannot: EventSource
 * sends no Authorization header, and a key must never go into a URL (access logs, history). The
 * same stream is then read with fetch(), which sends the header, and parsed here.
 */
(function () {
  "use strict";

  var MAX_FAILURES = 3;  // streams in a row that end before any event: give up, fall back

  /* Calls onEvent({event, data, id}) for each complete event in text; returns the rest. */
  function parse(text, onEvent) {
    var blocks = text.replace(/\r\n?/g, "\n").split("\n\n");
    var rest = blocks.pop();
    blocks.forEach(function (block) {
      var event = { event: "message", data: [], id: null };
      block.split("\n").forEach(function (line) {
        if (!line || line.charAt(0) === ":") return;  // a comment (": keepalive")
        var colon = line.indexOf(":");
        var field = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data.push(value);
        else if (field === "event") event.event = value;
        else if (field === "id") event.id = value;
      });
      if (event.data.length) onEvent({ event: event.event, data: event.data.join("\n"), id: event.id });
    });
    return rest;
  }

  function follow(jobId, options) {
    var url = "/jobs/" + encodeURIComponent(jobId) + "/events";
    var done = false;
    var failures = 0;

    function finish() { done = true; }
    function fallback() {
      if (done) return;
      finish();
      options.fallback();
    }
    function dispatch(message) {
      if (done) return;
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      failures = 0;
      if (message.event === "status") options.status(data);
      else if (message.event === "progress") options.progress(data);
      else if (message.event === "end") { finish(); options.end(data); }
    }
    options.signal.addEventListener("abort", finish);

    if (!options.key) {
      if (typeof window.EventSource !== "function") return false;
      var source = new EventSource(url);
      ["status", "progress", "end"].forEach(function (name) {
        source.addEventListener(name, function (event) {
          dispatch({ event: name, data: event.data });
          if (done) source.close();
        });
      });
      source.onerror = function () {
        // CLOSED: the server refused the stream (503, 404...). CONNECTING: the stream ended (its
        // lifetime, a restart) and EventSource tries again by itself, unless that keeps failing.
        failures += 1;
        if (source.readyState === EventSource.CLOSED || failures >= MAX_FAILURES) {
          source.close();
          fallback();
        }
      };
      options.signal.addEventListener("abort", function () { source.close(); });
      return true;
    }

    if (typeof window.fetch !== "function" || typeof window.TextDecoder !== "function") return false;
    var lastId = null;
    function open() {
      if (done) return;
      var headers = { "Accept": "text/event-stream", "Authorization": "Bearer " + options.key };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      fetch(url, { headers: headers, signal: options.signal, cache: "no-store", credentials: "same-origin" })
        .then(function (response) {
          var type = response.headers.get("Content-Type") || "";
          if (!response.ok || !response.body || type.indexOf("text/event-stream") !== 0) return fallback();
          var reader = response.body.getReader();
          var decoder = new TextDecoder();
          var buffer = "";
          function pump() {
            return reader.read().then(function (chunk) {
              if (done) { reader.cancel(); return; }
              if (chunk.done) return reopen();  // closed at its lifetime: go on, as EventSource would
              buffer = parse(buffer + decoder.decode(chunk.value, { stream: true }), function (message) {
                if (message.id !== null) lastId = message.id;
                dispatch(message);
              });
              return pump();
            });
          }
          return pump();
        })
        .catch(function () { if (!done) reopen(); });
    }
    function reopen() {
      failures += 1;
      if (failures >= MAX_FAILURES) return fallback();
      setTimeout(open, 1000);
    }
    open();
    return true;
  }

  window.OffloadEvents = { follow: follow, parse: parse };
})();
