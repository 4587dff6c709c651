/* The fields of a task's form, made from its arguments' JSON Schema (GET /tasks: args_schema), as
 * window.offloadForms. Nothing here knows any task: every field comes from the schema.
 *
 *   a string                   -> a text input (type=email for format email, url for uri; maxlength)
 *   a long text                -> a text area             ("x-offload-long-text": true)
 *   an upload                  -> a file input, and the text pasted when there is no file
 *                                                         ("x-offload-upload": true)
 *   an integer, a number       -> a number input (step 1 for an integer; min, max)
 *   an enum (or a const)       -> a select
 *   a boolean                  -> a checkbox
 *   an array of strings or numbers -> a list of inputs, one an item (of enums: a checkbox each)
 *   an object, or anything else -> JSON in a text area
 *
 * build(task, idPrefix) gives {element, fields, read(), fill(values), reset(), errorBox(name),
 * control(name)}. read() gives {values, files, problems}: the JSON values of the fields that were
 * given, the files chosen, and what could not be read (JSON that does not parse), as
 * [{field, message}] like the API's own errors.
 */
(function () {
  "use strict";

  var LONG_TEXT = "x-offload-long-text";
  var UPLOAD = "x-offload-upload";

  // --- the schema ----------------------------------------------------------------------------

  /* The node a "$ref" points at ("#/$defs/Name"), or null. */
  function lookup(root, ref) {
    if (typeof ref !== "string" || ref.charAt(0) !== "#") return null;
    var node = root;
    ref.slice(1).split("/").forEach(function (part) {
      if (!part || node == null) return;
      node = node[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    });
    return node && typeof node === "object" ? node : null;
  }

  function without(node, key) {
    var copy = Object.assign({}, node);
    delete copy[key];
    return copy;
  }

  /* A property's schema with its "$ref" and one-member "allOf" followed (the words beside them,
   * such as description and default, win), and an optional field's {"anyOf": [X, {"type":
   * "null"}]} read as X. nullable says whether null was allowed. */
  function resolve(root, node) {
    var nullable = false;
    for (var hops = 0; node && typeof node === "object" && hops < 20; hops++) {
      if (node.$ref) {
        node = Object.assign({}, lookup(root, node.$ref) || {}, without(node, "$ref"));
        continue;
      }
      if (Array.isArray(node.allOf) && node.allOf.length === 1) {
        node = Object.assign({}, node.allOf[0], without(node, "allOf"));
        continue;
      }
      var union = node.anyOf || node.oneOf;
      if (Array.isArray(union)) {
        var kept = union.filter(function (member) { return !(member && member.type === "null"); });
        if (kept.length < union.length) nullable = true;
        if (kept.length === 1) {
          node = Object.assign({}, kept[0], without(without(node, "anyOf"), "oneOf"));
          continue;
        }
      }
      if (Array.isArray(node.type) && node.type.indexOf("null") >= 0) {
        var types = node.type.filter(function (t) { return t !== "null"; });
        nullable = true;
        node = Object.assign({}, node, { type: types.length === 1 ? types[0] : types });
        continue;
      }
      break;
    }
    return { schema: node && typeof node === "object" ? node : {}, nullable: nullable };
  }

  function isScalarItem(items) {
    return items.type === "string" || items.type === "integer" || items.type === "number";
  }

  /* What kind of control a property gets. */
  function kindOf(schema, name, task) {
    var uploads = task.upload_fields || [];
    var longs = task.long_text_fields || [];
    if (schema[UPLOAD] || uploads.indexOf(name) >= 0) return "upload";
    if (Array.isArray(schema.enum) && schema.enum.length) return "enum";
    if ("const" in schema) return "enum";
    switch (schema.type) {
      case "boolean": return "boolean";
      case "integer": return "integer";
      case "number": return "number";
      case "string": return schema[LONG_TEXT] || longs.indexOf(name) >= 0 ? "longtext" : "string";
      case "array": return "array";
      default: return "json";
    }
  }

  /* The fields of a task's form, in the schema's order: {name, kind, required, nullable, schema,
   * items (an array's item schema), options (an enum's values)}. */
  function describe(task) {
    var root = task.args_schema || {};
    var properties = root.properties || {};
    var required = root.required || [];
    return Object.keys(properties).map(function (name) {
      var found = resolve(root, properties[name]);
      var schema = found.schema;
      var field = {
        name: name, schema: schema, nullable: found.nullable,
        required: required.indexOf(name) >= 0, kind: kindOf(schema, name, task)
      };
      field.longText = !!(schema[LONG_TEXT] || (task.long_text_fields || []).indexOf(name) >= 0);
      if (field.kind === "enum") field.options = Array.isArray(schema.enum) ? schema.enum : [schema["const"]];
      if (field.kind === "array") {
        var items = resolve(root, schema.items || {}).schema;
        field.items = items;
        if (Array.isArray(items.enum) && items.enum.length) field.kind = "choices";
        else if (!isScalarItem(items)) field.kind = "json";
        if (field.kind === "choices") field.options = items.enum;
      }
      return field;
    });
  }

  // --- words for people ----------------------------------------------------------------------

  /* "max_items" -> "Max items". */
  function humanize(name) {
    var text = String(name).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /* pydantic titles each field after its name (Python's "max_items".title(): "Max Items"): a
   * title of its own wins, else the name. */
  function titleOf(field) {
    var auto = String(field.name).toLowerCase().replace(/(^|[^a-z])([a-z])/g, function (m, before, letter) {
      return before + letter.toUpperCase();
    }).replace(/_/g, " ");
    var title = field.schema.title;
    return title && title !== auto ? title : humanize(field.name);
  }

  /* A pattern readable in a hint: control characters written as escapes. */
  function printable(text) {
    return String(text).replace(/[\u0000-\u001f\u007f]/g, function (c) {
      var named = { "\n": "\\n", "\r": "\\r", "\t": "\\t" }[c];
      return named || "\\x" + ("0" + c.charCodeAt(0).toString(16)).slice(-2);
    });
  }

  function optionText(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  /* The limits a field's schema sets, said in a few words. */
  function limits(field) {
    var s = field.schema;
    var parts = [];
    if (field.kind === "integer" || field.kind === "number") {
      var low = s.minimum != null ? s.minimum : s.exclusiveMinimum;
      var high = s.maximum != null ? s.maximum : s.exclusiveMaximum;
      if (low != null) parts.push((s.minimum != null ? "at least " : "more than ") + low);
      if (high != null) parts.push((s.maximum != null ? "at most " : "less than ") + high);
      if (s.multipleOf != null) parts.push("a multiple of " + s.multipleOf);
    } else if (field.kind === "string" || field.kind === "longtext" || field.kind === "upload") {
      if (s.minLength > 1) parts.push("at least " + s.minLength + " characters");
      if (s.maxLength != null) parts.push("at most " + s.maxLength + " characters");
    } else if (field.kind === "array") {
      if (s.minItems) parts.push("at least " + s.minItems + " items");
      if (s.maxItems != null) parts.push("at most " + s.maxItems + " items");
    } else if (field.kind === "json" && !s.description) {
      parts.push(s.type === "array" ? "A JSON array" : s.type === "object" || s.type == null ? "A JSON object" : "JSON");
    }
    if (!parts.length) return "";
    var text = parts.join(", ");
    return text.charAt(0).toUpperCase() + text.slice(1) + ".";
  }

  // --- the DOM -------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === undefined || value === null || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  /* An id made of the prefix and a field's name, safe whatever the name holds. */
  function idFor(prefix, name) {
    return prefix + "-" + String(name).replace(/[^A-Za-z0-9_-]/g, function (c) { return "_" + c.charCodeAt(0).toString(16); });
  }

  function labelFor(id, field, text) {
    var label = el("label", { "for": id, id: id + "-label", text: text || titleOf(field) });
    if (!field.required && field.kind !== "boolean") {
      label.appendChild(document.createTextNode(" "));
      label.appendChild(el("span", { className: "optional", text: "(optional)" }));
    }
    return label;
  }

  /* A one-line input for a string, an integer or a number (also one item of a list). */
  function scalarInput(schema, kind, attrs) {
    var input = el("input", Object.assign({ type: "text", autocomplete: "off" }, attrs));
    if (kind === "integer" || kind === "number") {
      input.type = "number";
      input.inputMode = kind === "integer" ? "numeric" : "decimal";
      input.step = kind === "integer" ? "1" : "any";
      var low = schema.minimum != null ? schema.minimum : schema.exclusiveMinimum;
      var high = schema.maximum != null ? schema.maximum : schema.exclusiveMaximum;
      if (low != null) input.min = String(low);
      if (high != null) input.max = String(high);
      return input;
    }
    if (schema.format === "email") { input.type = "email"; input.autocomplete = "email"; input.spellcheck = false; }
    else if (schema.format === "uri" || schema.format === "url") { input.type = "url"; input.spellcheck = false; }
    if (schema.maxLength != null) input.maxLength = schema.maxLength;
    if (schema.pattern) input.title = "Must match " + printable(schema.pattern);
    return input;
  }

  /* One field: its label, its control(s), its hint and its error line. */
  function buildField(field, prefix) {
    var id = idFor(prefix, field.name);
    var box = el("div", { className: "field field-" + field.kind, "data-field": field.name });
    var hintText = [field.schema.description || "", limits(field)].filter(Boolean).join(" ");
    if (!field.schema.description && field.schema.pattern && field.kind === "string") {
      hintText = (hintText + " Must match " + printable(field.schema.pattern) + ".").trim();
    }
    var hint = hintText ? el("p", { className: "hint", id: id + "-hint", text: hintText }) : null;
    var error = el("p", { className: "field-error", id: id + "-error", "data-error-for": field.name, hidden: true });
    var described = [hint ? id + "-hint" : "", id + "-error"].filter(Boolean).join(" ");
    var common = { id: id, name: field.name, "aria-describedby": described };
    if (field.required) { common.required = true; common["aria-required"] = "true"; }
    var made = { field: field, box: box, id: id };

    switch (field.kind) {
      case "boolean":
        made.input = el("input", Object.assign({}, common, { type: "checkbox", required: false, "aria-required": false }));
        box.appendChild(el("div", { className: "check" }, [made.input, labelFor(id, field)]));
        break;
      case "enum":
        made.input = el("select", common);
        // An empty choice where leaving the field out (or null) is allowed and nothing is chosen for it.
        if (field.nullable) made.input.appendChild(el("option", { value: "", text: "(none)" }));
        else if (!field.required && !("default" in field.schema)) made.input.appendChild(el("option", { value: "", text: "(not set)" }));
        field.options.forEach(function (value) {
          made.input.appendChild(el("option", { value: optionText(value), text: optionText(value) }));
        });
        box.appendChild(labelFor(id, field));
        box.appendChild(made.input);
        break;
      case "longtext":
      case "json":
        made.input = el("textarea", Object.assign({}, common, {
          rows: field.kind === "json" ? 3 : 5, spellcheck: field.kind === "json" ? "false" : null,
          maxlength: field.schema.maxLength, className: field.kind === "json" ? "code" : null,
          placeholder: field.kind === "json" ? (field.schema.type === "array" ? "[]" : "{}") : null
        }));
        box.appendChild(labelFor(id, field));
        box.appendChild(made.input);
        break;
      case "upload":
        buildUpload(made, field, common);
        break;
      case "array":
        buildList(made, field, id, described);
        break;
      case "choices":
        buildChoices(made, field, id, described);
        break;
      default:  // string, integer, number
        made.input = scalarInput(field.schema, field.kind, common);
        box.appendChild(labelFor(id, field));
        box.appendChild(made.input);
    }
    if (hint) {
      // In a group (a list, choices) the hint goes under its heading, not after the last item.
      var legend = box.querySelector(".legend");
      if (legend && field.kind !== "upload") legend.after(hint); else box.appendChild(hint);
    }
    box.appendChild(error);
    made.error = error;
    return made;
  }

  /* An upload: a file, or else the text typed or pasted (a text area for a long text). While a
   * file is chosen the text is not used, and says so. */
  function buildUpload(made, field, common) {
    var id = common.id;
    var long = field.longText;
    made.box.setAttribute("role", "group");
    made.box.setAttribute("aria-labelledby", id + "-legend");
    var legend = el("p", { className: "legend", id: id + "-legend", text: titleOf(field) });
    if (!field.required) {
      legend.appendChild(document.createTextNode(" "));
      legend.appendChild(el("span", { className: "optional", text: "(optional)" }));
    }
    made.file = el("input", {
      type: "file", id: id + "-file", "data-upload-for": field.name, "aria-describedby": common["aria-describedby"]
    });
    made.clear = el("button", { type: "button", className: "secondary", hidden: true, text: "Remove the file" });
    made.input = long
      ? el("textarea", Object.assign({}, common, { rows: 5, maxlength: field.schema.maxLength }))
      : scalarInput(field.schema, "string", common);
    made.box.appendChild(legend);
    made.box.appendChild(el("div", { className: "upload" }, [
      el("label", { "for": id + "-file", text: "A text file" }), made.file, made.clear
    ]));
    made.box.appendChild(el("label", { "for": id, className: "or", text: long ? "or paste the text" : "or type it" }));
    made.box.appendChild(made.input);
    var sync = function () {
      var chosen = made.file.files && made.file.files.length > 0;
      made.input.disabled = chosen;
      made.clear.hidden = !chosen;
      made.input.placeholder = chosen ? "The file " + made.file.files[0].name + " is sent instead." : "";
    };
    made.file.addEventListener("change", sync);
    made.clear.addEventListener("click", function () { made.file.value = ""; sync(); made.file.focus(); });
    made.syncUpload = sync;
  }

  /* A list of strings or numbers: one input an item, with buttons to add and remove items. */
  function buildList(made, field, id, described) {
    var itemKind = field.items.type === "string" ? "string" : field.items.type;
    var title = titleOf(field);
    made.box.setAttribute("role", "group");
    made.box.setAttribute("aria-labelledby", id + "-legend");
    var legend = el("p", { className: "legend", id: id + "-legend", text: title });
    if (!field.required) {
      legend.appendChild(document.createTextNode(" "));
      legend.appendChild(el("span", { className: "optional", text: "(optional)" }));
    }
    var list = el("ul", { className: "list-items", id: id });
    var add = el("button", { type: "button", className: "secondary", text: "Add an item", "aria-describedby": described });
    made.list = list;
    made.addItem = function (value, focus) {
      var number = list.children.length + 1;
      var input = scalarInput(field.items, itemKind, {
        name: field.name, "aria-label": title + " " + number, "aria-describedby": described
      });
      if (value != null) input.value = String(value);
      var remove = el("button", { type: "button", className: "secondary remove", "aria-label": "Remove item " + number, text: "×" });
      var item = el("li", {}, [input, remove]);
      remove.addEventListener("click", function () {
        var next = item.nextElementSibling || item.previousElementSibling;
        item.remove();
        renumber();
        var target = next && next.querySelector("input");
        (target || add).focus();
      });
      list.appendChild(item);
      if (focus) input.focus();
      return input;
    };
    function renumber() {
      Array.prototype.forEach.call(list.children, function (item, index) {
        item.querySelector("input").setAttribute("aria-label", title + " " + (index + 1));
        item.querySelector("button").setAttribute("aria-label", "Remove item " + (index + 1));
      });
    }
    add.addEventListener("click", function () { made.addItem(null, true); });
    made.box.appendChild(legend);
    made.box.appendChild(list);
    made.box.appendChild(add);
  }

  /* A list of enum values: a checkbox each. */
  function buildChoices(made, field, id, described) {
    made.box.setAttribute("role", "group");
    made.box.setAttribute("aria-labelledby", id + "-legend");
    made.box.setAttribute("aria-describedby", described);
    var legend = el("p", { className: "legend", id: id + "-legend", text: titleOf(field) });
    made.box.appendChild(legend);
    made.checks = field.options.map(function (value, index) {
      var input = el("input", { type: "checkbox", id: id + "-" + index, name: field.name, value: optionText(value) });
      made.box.appendChild(el("div", { className: "check" }, [input, el("label", { "for": id + "-" + index, text: optionText(value) })]));
      return { input: input, value: value };
    });
  }

  // --- values in and out -----------------------------------------------------------------------

  function defaultOf(field) {
    return "default" in field.schema ? field.schema["default"] : undefined;
  }

  /* Put a value (a default, an example's) into a field; undefined empties it. */
  function setValue(made, value) {
    var field = made.field;
    switch (field.kind) {
      case "boolean":
        made.input.checked = value === true;
        break;
      case "enum":
        made.input.value = value === undefined || value === null ? "" : optionText(value);
        if (made.input.selectedIndex < 0) made.input.selectedIndex = 0;
        break;
      case "array":
        made.list.textContent = "";
        (Array.isArray(value) ? value : []).forEach(function (item) { made.addItem(item, false); });
        if (!made.list.children.length) made.addItem(null, false);
        break;
      case "choices":
        made.checks.forEach(function (check) {
          check.input.checked = Array.isArray(value) && value.some(function (v) { return optionText(v) === optionText(check.value); });
        });
        break;
      case "json":
        made.input.value = value === undefined || value === null ? "" : JSON.stringify(value, null, 2);
        break;
      case "upload":
        made.file.value = "";
        made.syncUpload();
        made.input.value = value == null ? "" : String(value);
        break;
      default:
        made.input.value = value == null ? "" : String(value);
    }
  }

  /* A field's value for the API, or undefined when it was left empty (the server's default, or its
   * "required" error, applies). Throws an Error whose message is for the field. */
  function readValue(made) {
    var field = made.field;
    switch (field.kind) {
      case "boolean":
        return made.input.checked;
      case "enum": {
        var chosen = made.input.value;
        if (chosen === "") return field.required && field.nullable ? null : undefined;
        var match = field.options.filter(function (v) { return optionText(v) === chosen; });
        return match.length ? match[0] : chosen;
      }
      case "array": {
        var items = [];
        made.list.querySelectorAll("input").forEach(function (input) {
          if (field.items.type === "string") { if (input.value !== "") items.push(input.value); return; }
          if (input.value.trim() !== "") items.push(toNumber(input.value.trim()));
          else if (input.validity && input.validity.badInput) throw new Error("item " + input.getAttribute("aria-label") + " is not a number");
        });
        return items.length || field.required ? items : undefined;
      }
      case "choices": {
        var picked = made.checks.filter(function (c) { return c.input.checked; }).map(function (c) { return c.value; });
        return picked.length || field.required ? picked : undefined;
      }
      case "json": {
        var text = made.input.value.trim();
        if (!text) return undefined;
        try { return JSON.parse(text); } catch (e) { throw new Error("not valid JSON: " + e.message); }
      }
      case "integer":
      case "number": {
        var raw = made.input.value.trim();
        if (raw === "") {
          // A number input holds "" for what it cannot read ("1e", "abc"): say so rather than send nothing.
          if (made.input.validity && made.input.validity.badInput) throw new Error("not a number");
          return undefined;
        }
        return toNumber(raw);
      }
      default: {
        var value = made.input.value;
        if (value === "" && !field.required) return undefined;
        return value;
      }
    }
  }

  function toNumber(text) {
    var number = Number(text);
    return text !== "" && isFinite(number) ? number : text;  // the server says what is wrong with the rest
  }

  // --- a task's fields -----------------------------------------------------------------------------

  function build(task, prefix) {
    var fields = describe(task);
    var element = el("fieldset", { className: "task-fields", "data-task": task.type });
    element.appendChild(el("legend", { className: "visually-hidden", text: "Arguments of " + task.type }));
    if (!fields.length) element.appendChild(el("p", { className: "hint", text: "This task takes no arguments." }));
    var made = fields.map(function (field) {
      var one = buildField(field, prefix);
      element.appendChild(one.box);
      return one;
    });
    var byName = {};
    made.forEach(function (one) { byName[one.field.name] = one; });

    function reset() { made.forEach(function (one) { setValue(one, defaultOf(one.field)); }); }

    function fill(values) {
      reset();
      Object.keys(values || {}).forEach(function (name) { if (byName[name]) setValue(byName[name], values[name]); });
    }

    function read() {
      var values = {}, files = {}, problems = [];
      made.forEach(function (one) {
        var name = one.field.name;
        if (one.file && one.file.files && one.file.files.length) { files[name] = one.file.files[0]; return; }
        try {
          var value = readValue(one);
          if (value !== undefined) values[name] = value;
        } catch (e) {
          problems.push({ field: name, message: e.message });
        }
      });
      return { values: values, files: files, problems: problems };
    }

    /* The control that takes the focus for a field's error. */
    function control(name) {
      var one = byName[name];
      if (!one) return null;
      if (one.file && one.file.files && one.file.files.length) return one.file;
      if (one.list) return one.list.querySelector("input") || one.box.querySelector("button");
      if (one.checks) return one.checks.length ? one.checks[0].input : null;
      return one.input;
    }

    function errorBox(name) { return byName[name] ? byName[name].error : null; }

    reset();
    return { element: element, fields: fields, read: read, fill: fill, reset: reset, control: control, errorBox: errorBox };
  }

  window.offloadForms = { describe: describe, build: build, resolve: resolve, humanize: humanize };
})();
