// genderlens form enhancement: hides questions that do not apply and checks constraints
// as residents type. It evaluates the same expression trees the server parsed (embedded
// as JSON), with the same XPath rules; the server stays the authority on every answer.
(function () {
  "use strict";
  var DAY = 86400000;
  // Values: null (no answer), number, string, boolean, {date: days since 1970}, array (multi).
  function isDate(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function parseDate(s) {
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(s).trim());
    if (!m) return null;
    var t = Date.UTC(+m[1], +m[2] - 1, +m[3]);
    return isNaN(t) ? null : Math.round(t / DAY);
  }
  function toText(v) {
    if (v === null) return "";
    if (Array.isArray(v)) return v.join(" ");
    if (isDate(v)) return new Date(v.date * DAY).toISOString().slice(0, 10);
    if (typeof v === "number") {
      if (isNaN(v)) return "NaN";
      if (!isFinite(v)) return v > 0 ? "Infinity" : "-Infinity";
      return String(v);
    }
    return String(v);
  }
  function toNumber(v) {
    if (v === null) return NaN;
    if (typeof v === "number") return v;
    if (typeof v === "boolean") return v ? 1 : 0;
    if (isDate(v)) return v.date;
    var t = toText(v).trim();
    return /^-?[0-9.]+$/.test(t) ? parseFloat(t) : NaN;
  }
  function toBool(v) {
    if (v === null) return false;
    if (typeof v === "number") return v !== 0 && !isNaN(v);
    if (typeof v === "boolean") return v;
    if (isDate(v)) return true;
    if (Array.isArray(v)) return v.length > 0;
    return v.length > 0;
  }
  function toDays(v) {
    if (typeof v === "string") { var d = parseDate(v); return d === null ? toNumber(v) : d; }
    return toNumber(v);
  }
  function items(v) { return Array.isArray(v) ? v : toText(v).split(/\s+/).filter(Boolean); }

  function compare(op, a, b) {
    var dates = isDate(a) || isDate(b);
    if (op === "eq" || op === "ne") {
      var eq;
      if (dates) eq = toDays(a) === toDays(b);
      else if (typeof a === "boolean" || typeof b === "boolean") eq = toBool(a) === toBool(b);
      // Within 1e-12, as JavaRosa's XPathEqExpr: 0.1 + 0.2 = 0.3.
      else if (typeof a === "number" || typeof b === "number") eq = Math.abs(toNumber(a) - toNumber(b)) < 1e-12;
      else eq = toText(a) === toText(b);
      return op === "eq" ? eq : !eq;
    }
    var x = dates ? toDays(a) : toNumber(a), y = dates ? toDays(b) : toNumber(b);
    if (op === "lt") return x < y;
    if (op === "le") return x <= y;
    if (op === "gt") return x > y;
    return x >= y;
  }

  // The decimal digits of x >= 0 without an exponent ("1e-7" is "0.0000001").
  function plainDigits(x) {
    var s = String(x), e = s.indexOf("e");
    if (e < 0) return s;
    var mantissa = s.slice(0, e), point = mantissa.indexOf(".");
    var digits = mantissa.replace(".", "");
    var at = (point < 0 ? mantissa.length : point) + Number(s.slice(e + 1));
    if (at <= 0) return "0." + "0".repeat(-at) + digits;
    if (at >= digits.length) return digits + "0".repeat(at - digits.length);
    return digits.slice(0, at) + "." + digits.slice(at);
  }

  // JavaRosa's round(), as the server does it (see `round` in src/form/expr.rs): the
  // shortest decimal text of x, rounded half up for x >= 0 and half down below zero.
  function round(x, digits) {
    if (!isFinite(x)) return x;
    var places = isNaN(digits) ? 0 : Math.trunc(digits);
    if (places > 30 || places < -30) return NaN;
    var sign = x < 0 ? "-" : "";
    if (places < 0) {
      var scaled = Number(sign + plainDigits(Math.abs(x)) + "e" + places);
      // A Java long: truncated, and saturated at its range.
      var whole = Math.max(-9223372036854775808, Math.min(9223372036854775807, Math.trunc(scaled + 0.5)));
      return Number((whole < 0 ? "-" : "") + plainDigits(Math.abs(whole)) + "e" + (-places)) + 0;
    }
    var text = plainDigits(Math.abs(x)), dot = text.indexOf(".");
    var int = dot < 0 ? text : text.slice(0, dot), frac = dot < 0 ? "" : text.slice(dot + 1);
    if (frac.length <= places) return x + 0;
    var next = frac.charAt(places), rest = frac.slice(places + 1);
    var up = next > "5" || (next === "5" && (x > 0 || /[1-9]/.test(rest)));
    var kept = (int + frac.slice(0, places)).split("");
    if (up) {
      var i = kept.length - 1;
      while (i >= 0 && kept[i] === "9") { kept[i] = "0"; i--; }
      if (i < 0) kept.unshift("1"); else kept[i] = String(Number(kept[i]) + 1);
    }
    return Number(sign + kept.join("") + "e-" + places) + 0;
  }

  // The whole text must match, as in JavaRosa (`Pattern.matches`); the pattern is
  // checked alone first, since wrapping could make an invalid one valid.
  function wholeMatch(pattern, text) {
    try {
      new RegExp(pattern, "u");
      return new RegExp("^(?:" + pattern + ")$", "u").test(text);
    } catch (e) { return false; }
  }

  function call(f, args, ctx) {
    var a = function (i) { return i < args.length ? evaluate(args[i], ctx) : null; };
    var n = function (i) { return toNumber(a(i)); };
    var s = function (i) { return toText(a(i)); };
    switch (f) {
      case "selected":
        // The whole answer counts too: a select_one value may contain spaces.
        var wanted = s(1);
        return (wanted !== "" && toText(a(0)) === wanted) || items(a(0)).indexOf(wanted) >= 0;
      case "count-selected": return items(a(0)).length;
      case "if": return toBool(a(0)) ? a(1) : a(2);
      case "not": return !toBool(a(0));
      case "true": return true;
      case "false": return false;
      // Without an argument: the answer being checked (the context node).
      case "string-length": return Array.from(args.length ? s(0) : toText(ctx.current)).length;
      case "regex": return wholeMatch(s(1), s(0));
      case "coalesce":
        // JavaRosa's isNull: the empty string or NaN.
        var first = a(0);
        return toText(first) === "" || (typeof first === "number" && isNaN(first)) ? a(1) : first;
      case "concat": return args.map(function (_, i) { return s(i); }).join("");
      case "int": return Math.trunc(n(0));
      case "round": return round(n(0), args.length > 1 ? n(1) : 0);
      case "number": return n(0);
      case "string": return s(0);
      case "boolean": return toBool(a(0));
      case "today": return { date: Math.floor(Date.now() / DAY) };
      case "date":
        var v = a(0);
        if (isDate(v)) return v;
        if (typeof v === "number" && isFinite(v)) return { date: Math.trunc(v) };
        var d = parseDate(toText(v)); return d === null ? null : { date: d };
      case "contains": return s(0).indexOf(s(1)) >= 0;
      case "starts-with": return s(0).indexOf(s(1)) === 0;
      case "ends-with": var t = s(0), u = s(1); return t.slice(t.length - u.length) === u;
      case "substr":
        var chars = Array.from(s(0));
        var clamp = function (x) { return isNaN(x) ? 0 : Math.max(0, Math.min(chars.length, Math.trunc(x))); };
        var start = clamp(n(1)), end = args.length > 2 ? clamp(n(2)) : chars.length;
        return chars.slice(start, Math.max(start, end)).join("");
      case "floor": return Math.floor(n(0));
      case "ceiling": return Math.ceil(n(0));
      case "abs": return Math.abs(n(0));
      case "min": case "max":
        // Arguments that are not numbers (empty answers) are skipped, as in JavaRosa.
        var xs = args.map(function (_, i) { return n(i); }).filter(function (x) { return !isNaN(x); });
        if (!xs.length) return NaN;
        return f === "min" ? Math.min.apply(null, xs) : Math.max.apply(null, xs);
      case "pow": return Math.pow(n(0), n(1));
    }
    return null;
  }

  function evaluate(node, ctx) {
    switch (node.t) {
      case "num": return node.v;
      case "str": return node.v;
      case "ref": return ctx.value(node.q);
      case "current": return ctx.current;
      case "neg": return -toNumber(evaluate(node.e, ctx));
      case "bin":
        if (node.op === "or") return toBool(evaluate(node.l, ctx)) || toBool(evaluate(node.r, ctx));
        if (node.op === "and") return toBool(evaluate(node.l, ctx)) && toBool(evaluate(node.r, ctx));
        var a = evaluate(node.l, ctx), b = evaluate(node.r, ctx);
        switch (node.op) {
          case "add": return toNumber(a) + toNumber(b);
          case "sub": return toNumber(a) - toNumber(b);
          case "mul": return toNumber(a) * toNumber(b);
          case "div": return toNumber(a) / toNumber(b);
          case "mod": return toNumber(a) % toNumber(b);
        }
        return compare(node.op, a, b);
      case "call": return call(node.f, node.args, ctx);
    }
    return null;
  }

  // Node runs the evaluator alone to compare it with the server's (src/form/expr.rs
  // tests); a browser has no `module`.
  if (typeof module === "object" && module.exports) {
    module.exports = { evaluate: evaluate, toText: toText };
  }
  if (typeof document === "undefined") return;
  var form = document.getElementById("survey");
  if (!form) return;

  function parse(json) { try { return json ? JSON.parse(json) : null; } catch (e) { return null; } }

  // The answer currently given to a question, as the server would read it.
  function answerOf(question) {
    var box = document.getElementById("q-" + question);
    if (!box || box.hidden) return null;
    var inputs = form.querySelectorAll('[name="' + question + '"]');
    var type = box.getAttribute("data-type");
    if (type === "checkbox") {
      var picked = Array.prototype.filter.call(inputs, function (i) { return i.checked; }).map(function (i) { return i.value; });
      return picked.length ? picked : null;
    }
    if (type === "radio") {
      var checked = Array.prototype.find.call(inputs, function (i) { return i.checked; });
      return checked ? checked.value : null;
    }
    var raw = inputs.length ? inputs[0].value.trim() : "";
    if (raw === "") return null;
    if (type === "number") { var x = parseFloat(raw.replace(",", ".")); return isNaN(x) ? raw : x; }
    if (type === "date") { var d = parseDate(raw); return d === null ? raw : { date: d }; }
    return raw;
  }

  var calculations = parse(form.getAttribute("data-calculations")) || [];
  var calculated = {};
  var ctx = {
    current: null,
    value: function (q) { return Object.prototype.hasOwnProperty.call(calculated, q) ? calculated[q] : answerOf(q); }
  };

  function setError(box, message) {
    var id = box.id.slice(2);
    var p = document.getElementById("error-" + id);
    var control = document.getElementById("input-" + id);
    if (!p || !control) return;
    if (message) {
      p.textContent = message; p.hidden = false;
      control.setAttribute("aria-invalid", "true"); box.classList.add("invalid");
    } else if (p.getAttribute("data-live") === "1" || !box.classList.contains("invalid")) {
      p.textContent = ""; p.hidden = true;
      control.removeAttribute("aria-invalid"); box.classList.remove("invalid");
    }
    p.setAttribute("data-live", message ? "1" : "0");
  }

  function refresh() {
    calculated = {};
    calculations.forEach(function (c) {
      var relevant = !c.relevant || toBool(evaluate(c.relevant, ctx));
      var v = relevant ? evaluate(c.expr, ctx) : null;
      calculated[c.id] = (typeof v === "number" && !isFinite(v)) || toText(v) === "" ? null : v;
    });
    // Document order: a group is decided before the questions inside it.
    Array.prototype.forEach.call(form.querySelectorAll("[data-relevant]"), function (box) {
      var expr = parse(box.getAttribute("data-relevant"));
      var inHiddenGroup = box.parentElement && box.parentElement.closest("[hidden]");
      var show = !inHiddenGroup && (!expr || toBool(evaluate(expr, ctx)));
      box.hidden = !show;
      // Hidden answers are not sent: what does not apply is not an answer.
      Array.prototype.forEach.call(box.querySelectorAll("input, textarea"), function (i) {
        if (i.closest("[data-relevant]") === box) i.disabled = !show;
      });
    });
  }

  function check(box) {
    var expr = parse(box.getAttribute("data-constraint"));
    if (!expr || box.hidden) return;
    var value = answerOf(box.id.slice(2));
    if (value === null) { setError(box, ""); return; }
    ctx.current = value;
    var ok = toBool(evaluate(expr, ctx));
    ctx.current = null;
    // Without a constraint_message the page's default (error-constraint), since an
    // empty message would clear the error instead of showing it.
    setError(box, ok ? "" : box.getAttribute("data-message") || form.getAttribute("data-constraint-default") || "");
  }

  form.addEventListener("input", refresh);
  form.addEventListener("change", function (event) {
    refresh();
    var box = event.target.closest("[data-constraint]");
    if (box) check(box);
  });
  refresh();
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
