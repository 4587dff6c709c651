/* What every block of offload's page uses to talk to the API: the key, one call, a problem's
 * sentence, a message line, a table cell. Loaded first (deferred scripts run in order), as window.offloadApi.
 *
 * With API keys on, the key lives in this tab's sessionStorage only (in memory when the storage
 * refuses) and goes out as "Authorization: Bearer <key>".
 */
(function () {
  "use strict";

  var AUTH = document.body.dataset.auth === "on";
  var KEY_STORAGE = "offload.apiKey";
  var memoryKey = "";

  function key() {
    if (!AUTH) return "";
    try { return window.sessionStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return memoryKey; }
  }

  function setKey(value) {
    memoryKey = value;
    try {
      if (value) window.sessionStorage.setItem(KEY_STORAGE, value);
      else window.sessionStorage.removeItem(KEY_STORAGE);
    } catch (e) { /* storage refused (private mode): keep it in memory for this page */ }
  }

  /* One call to the API. Resolves to {status, ok, data, headers} (data: the parsed JSON body, or
   * null); rejects only when the network fails (or the call is aborted through signal). The payload
   * goes as JSON, or as multipart/form-data when it is a FormData (the browser writes its
   * Content-Type, boundary included). */
  function api(method, path, payload, signal) {
    var headers = { "Accept": "application/json, application/problem+json" };
    var form = typeof FormData !== "undefined" && payload instanceof FormData;
    if (payload !== undefined && !form) headers["Content-Type"] = "application/json";
    var bearer = key();
    if (bearer) headers["Authorization"] = "Bearer " + bearer;
    return fetch(path, {
      method: method,
      headers: headers,
      body: payload === undefined ? undefined : (form ? payload : JSON.stringify(payload)),
      signal: signal,
      cache: "no-store",
      credentials: "same-origin"
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { status: response.status, ok: response.ok, data: data, headers: response.headers };
      });
    });
  }

  /* The sentence for a failed call: the problem's detail (or title). */
  function detail(answer) {
    var p = answer.data || {};
    return p.detail || p.title || ("The server answered " + answer.status + ".");
  }

  /* Show text in a message box; an empty text hides it. */
  function message(box, text) {
    box.textContent = text || "";
    box.hidden = !text;
  }

  /* A table cell with text (none for null or undefined) and, when given, a class. */
  function cell(text, className) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (className) td.className = className;
    return td;
  }

  /* GET /tasks, asked once for every block of the page that needs the tasks (the job form, the
   * batch, the schedules' example). A failed answer is not kept: the next call asks again (after
   * the user has entered a key, say). Resolves to api()'s answer. */
  var taskList = null;
  function tasks(again) {
    if (!taskList || again) {
      var asked = api("GET", "/tasks").then(function (answer) {
        if (!answer.ok && taskList === asked) taskList = null;
        return answer;
      }, function (err) {
        if (taskList === asked) taskList = null;
        throw err;
      });
      taskList = asked;
    }
    return taskList;
  }

  window.offloadApi = {
    auth: AUTH, key: key, setKey: setKey, api: api, detail: detail, message: message, cell: cell, tasks: tasks
  };
})();
