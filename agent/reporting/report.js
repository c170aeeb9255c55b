// selfheal report charts: written for this report, no library, no network. Each chart draws
// into its <figure>; failures are caught per chart and listed in #script-errors so a test
// can see them.
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message)); show(); });
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#0969da", "#1a7f37", "#bf3989", "#9a6700", "#8250df", "#cf222e", "#1b7c83"];
  var data = JSON.parse(document.getElementById("report-data").textContent);

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function svg(fig, w, h) {
    var s = el("svg", {viewBox: "0 0 " + w + " " + h, role: "img"});
    fig.appendChild(s);
    return s;
  }
  function empty(s, w, h, msg) {
    el("text", {x: w / 2, y: h / 2, "text-anchor": "middle", "class": "empty"}, s, msg);
  }
  function legend(fig, names) {
    var p = document.createElement("div");
    p.className = "legend";
    names.forEach(function (n, i) {
      var sw = document.createElement("i");
      sw.style.background = COLORS[i % COLORS.length];
      p.appendChild(sw);
      p.appendChild(document.createTextNode(n));
    });
    fig.appendChild(p);
  }
  function axisY(s, x0, y0, y1, max, fmt) {
    for (var i = 0; i <= 4; i++) {
      var v = max * i / 4, y = y0 - (y0 - y1) * i / 4;
      el("line", {x1: x0, x2: 600 - 10, y1: y, y2: y, stroke: "#eaeef2"}, s);
      el("text", {x: x0 - 6, y: y + 4, "text-anchor": "end"}, s, fmt(v));
    }
  }
  function nice(max) { return max > 0 ? max * 1.1 : 1; }

  var draw = {
    timing: function (fig) {
      var rows = data.healed_timings, h = Math.max(120, 40 + rows.length * 46), s = svg(fig, 600, h);
      if (!rows.length) { return empty(s, 600, h, "No healed subject with timings yet"); }
      var max = nice(Math.max.apply(null, rows.map(function (r) { return Math.max(r.before_ms, r.after_ms); })));
      var x0 = 170, width = 600 - x0 - 60;
      rows.forEach(function (r, i) {
        var y = 20 + i * 46, label = r.subject.length > 28 ? "…" + r.subject.slice(-27) : r.subject;
        el("text", {x: x0 - 8, y: y + 18, "text-anchor": "end"}, s, label);
        [["before", r.before_ms, "#cf222e"], ["after", r.after_ms, "#1a7f37"]].forEach(function (b, j) {
          var bw = Math.max(1, width * b[1] / max), rect = el("rect",
            {x: x0, y: y + j * 17, width: bw, height: 14, fill: b[2], rx: 2}, s);
          el("title", {}, rect, b[0] + ": " + b[1].toFixed(1) + " ms");
          el("text", {x: x0 + bw + 4, y: y + j * 17 + 11}, s, b[1].toFixed(1) + " ms");
        });
      });
      legend(fig, ["before the fix", "after the fix"]);
      fig.querySelectorAll(".legend i")[0].style.background = "#cf222e";
      fig.querySelectorAll(".legend i")[1].style.background = "#1a7f37";
    },
    runs: function (fig) {
      var runs = data.runs, h = 220, s = svg(fig, 600, h);
      if (!runs.length) { return empty(s, 600, h, "No recorded runs yet"); }
      var kinds = [];
      runs.forEach(function (r) { Object.keys(r.anomalies).forEach(function (k) { if (kinds.indexOf(k) < 0) { kinds.push(k); } }); });
      kinds.sort();
      var totals = runs.map(function (r) { return kinds.reduce(function (t, k) { return t + (r.anomalies[k] || 0); }, 0); });
      var max = Math.ceil(Math.max(1, Math.max.apply(null, totals)) / 4) * 4;
      var x0 = 40, y0 = h - 30, y1 = 14;
      axisY(s, x0, y0, y1, max, function (v) { return Math.round(v); });
      var step = (600 - x0 - 10) / runs.length, bw = Math.max(3, Math.min(36, step * 0.7));
      runs.forEach(function (r, i) {
        var x = x0 + i * step + (step - bw) / 2, y = y0;
        kinds.forEach(function (k, j) {
          var n = r.anomalies[k] || 0, bh = (y0 - y1) * n / max;
          if (!n) { return; }
          y -= bh;
          var rect = el("rect", {x: x, y: y, width: bw, height: bh, fill: COLORS[j % COLORS.length]}, s);
          el("title", {}, rect, "run " + r.run_id + ": " + n + " " + k);
        });
        if (!totals[i]) { el("circle", {cx: x + bw / 2, cy: y0 - 3, r: 3, fill: "#1a7f37"}, s); }
        if (runs.length <= 20 || i % Math.ceil(runs.length / 20) === 0) {
          el("text", {x: x + bw / 2, y: y0 + 14, "text-anchor": "middle"}, s, "#" + r.run_id);
        }
      });
      legend(fig, kinds.length ? kinds : ["no anomalies"]);
    },
    rates: function (fig) {
      var pts = data.strategy_rates, h = 220, s = svg(fig, 600, h);
      if (!pts.length) { return empty(s, 600, h, "No judged fixes yet"); }
      var names = [];
      pts.forEach(function (p) { if (names.indexOf(p.strategy) < 0) { names.push(p.strategy); } });
      // x = 0 is the prior (50% for every strategy); each judged fix moves one line.
      var x0 = 40, y0 = h - 24, y1 = 12, n = pts.length;
      axisY(s, x0, y0, y1, 1, function (v) { return Math.round(v * 100) + "%"; });
      el("text", {x: x0, y: h - 6}, s, "prior");
      el("text", {x: 590, y: h - 6, "text-anchor": "end"}, s, n + " judged fix" + (n === 1 ? "" : "es"));
      names.forEach(function (name, j) {
        var color = COLORS[j % COLORS.length], last = 0.5;
        var path = "M" + x0 + " " + (y0 - (y0 - y1) * 0.5).toFixed(1);
        pts.forEach(function (p, i) {
          if (p.strategy === name) { last = p.rate; }
          var x = x0 + (600 - x0 - 10) * (i + 1) / n, y = y0 - (y0 - y1) * last;
          path += "L" + x.toFixed(1) + " " + y.toFixed(1);
          if (p.strategy === name) {
            var c = el("circle", {cx: x, cy: y, r: 3.5, fill: color}, s);
            el("title", {}, c, name + ": " + Math.round(p.rate * 100) + "%");
          }
        });
        el("path", {d: path, fill: "none", stroke: color, "stroke-width": 2}, s);
      });
      legend(fig, names);
    },
    proposals: function (fig) {
      var st = data.deployments_by_status, keys = Object.keys(st).sort(), h = 160, s = svg(fig, 600, h);
      if (!keys.length) { return empty(s, 600, h, "Nothing delivered yet"); }
      var max = Math.max.apply(null, keys.map(function (k) { return st[k]; }));
      var x0 = 90, rowh = Math.min(30, (h - 10) / keys.length);
      keys.forEach(function (k, i) {
        var y = 6 + i * rowh, bw = Math.max(2, (600 - x0 - 50) * st[k] / max);
        el("text", {x: x0 - 8, y: y + rowh / 2 + 4, "text-anchor": "end"}, s, k);
        var rect = el("rect", {x: x0, y: y + 3, width: bw, height: rowh - 8, rx: 2,
          fill: k === "proposed" ? "#0969da" : COLORS[(i + 1) % COLORS.length]}, s);
        el("title", {}, rect, st[k] + " " + k);
        el("text", {x: x0 + bw + 4, y: y + rowh / 2 + 4}, s, String(st[k]));
      });
    }
  };

  function show() {
    var box = document.getElementById("script-errors");
    box.textContent = errors.join("\n");
    document.documentElement.setAttribute("data-errors", String(errors.length));
  }
  var done = 0;
  Array.prototype.forEach.call(document.querySelectorAll("figure[data-chart]"), function (fig) {
    try { draw[fig.getAttribute("data-chart")](fig); done += 1; }
    catch (e) { errors.push(fig.getAttribute("data-chart") + ": " + e); }
  });
  document.documentElement.setAttribute("data-charts-rendered", String(done));
  document.getElementById("render-status").textContent = "rendered " + done + " charts";
  show();
})();
