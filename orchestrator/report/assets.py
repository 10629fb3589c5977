"""The HTML report's inline style and script (:mod:`orchestrator.report.html`), kept in Python strings so that
they travel inside the package with nothing to declare.

The script reads the page's JSON data and draws every chart as SVG. Text from the ledger only ever
goes through ``textContent`` (never ``innerHTML``). Each figure it draws gets ``data-marks``: how many
bars, points or rows it drew (0 when there was nothing to draw), for tests and curious readers.
"""

from __future__ import annotations

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       margin: 0 auto; max-width: 1240px; padding: 16px 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.meta, footer { color: #59636e; font-size: 12px; }
footer { margin-top: 20px; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.tile { border: 1px solid #d1d9e0; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.tile b { display: block; font-size: 20px; }
.tile span { color: #59636e; font-size: 12px; }
.tile.bad b { color: #c62828; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid #d1d9e0; border-radius: 6px; padding: 8px 10px; }
figure.wide { grid-column: 1 / -1; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg { width: 100%; height: auto; display: block; }
svg text { font-size: 11px; fill: #3d444d; }
svg .grid-line { stroke: #e6eaef; }
svg .axis { stroke: #8c959f; }
svg .empty { font-size: 14px; fill: #8c959f; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { border-bottom: 1px solid #e6eaef; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; word-break: break-all; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var COLORS = {completed: "#2e7d32", submitted: "#1565c0", submitting: "#64b5f6", pending: "#9e9e9e",
                failed: "#c62828", invalid: "#ef6c00", uncertain: "#6a1b9a"};
  var STATES = ["completed", "submitted", "submitting", "pending", "failed", "invalid", "uncertain"];
  var W = 560, H = 250, M = {l: 58, r: 14, t: 26, b: 42};

  function svgNode(parent, tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { node.textContent = text; }
    parent.appendChild(node);
    return node;
  }
  function htmlNode(parent, tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    if (cls) { node.className = cls; }
    parent.appendChild(node);
    return node;
  }
  function tip(node, text) { svgNode(node, "title", {}, text); return node; }
  function num(n) { return Math.round(n).toLocaleString("en-US"); }
  function short(n) {
    var units = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (var i = 0; i < units.length; i++) {
      var u = units[i][0];
      if (Math.abs(n) >= u) { return (n / u).toFixed(n >= 10 * u ? 0 : 1) + units[i][1]; }
    }
    return String(Math.round(n));
  }
  function bytes(n) {
    var units = ["B", "KB", "MB", "GB", "TB", "PB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  function duration(s) {
    if (s < 60) { return s.toFixed(1) + " s"; }
    if (s < 3600) { return (s / 60).toFixed(1) + " min"; }
    return (s / 3600).toFixed(1) + " h";
  }
  function when(t) { return new Date(t * 1000).toISOString().slice(5, 16).replace("T", " "); }
  function niceMax(v) {
    if (v <= 0) { return 1; }
    var p = Math.pow(10, Math.floor(Math.log10(v))), steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= v) { return steps[i] * p; } }
    return 10 * p;
  }
  function chart(id) {
    var fig = document.getElementById(id);
    return {fig: fig, svg: svgNode(fig, "svg", {viewBox: "0 0 " + W + " " + H, role: "img"})};
  }
  function done(c, marks, emptyText) {
    if (!marks) {
      svgNode(c.svg, "text", {x: W / 2, y: H / 2, "text-anchor": "middle", "class": "empty"}, emptyText);
    }
    c.fig.setAttribute("data-marks", String(marks));
  }
  function legend(svg, series, width) {
    var x = (width || W) - M.r;
    for (var i = series.length - 1; i >= 0; i--) {
      var label = series[i].name, width = 16 + label.length * 6.2;
      x -= width;
      svgNode(svg, "rect", {x: x, y: 6, width: 10, height: 10, fill: series[i].color});
      svgNode(svg, "text", {x: x + 14, y: 15}, label);
      x -= 8;
    }
  }
  function yAxis(svg, top, fmt) {
    var plotH = H - M.t - M.b;
    for (var i = 0; i <= 4; i++) {
      var y = M.t + plotH - plotH * i / 4;
      svgNode(svg, "line", {x1: M.l, x2: W - M.r, y1: y, y2: y, "class": i ? "grid-line" : "axis"});
      svgNode(svg, "text", {x: M.l - 6, y: y + 4, "text-anchor": "end"}, fmt(top * i / 4));
    }
  }
  function xLabels(svg, labels, step) {
    var plotW = W - M.l - M.r, every = Math.max(1, Math.ceil(labels.length / 6));
    for (var i = 0; i < labels.length; i += every) {
      svgNode(svg, "text", {x: M.l + (i + 0.5) * step, y: H - M.b + 16, "text-anchor": "middle"}, labels[i]);
    }
    return plotW;
  }

  // stacked vertical bars: labels[i], series[k].values[i]
  function bars(id, labels, series, emptyText, fmt) {
    var c = chart(id), marks = 0, plotW = W - M.l - M.r, plotH = H - M.t - M.b;
    var totals = labels.map(function (_, i) {
      return series.reduce(function (s, ser) { return s + ser.values[i]; }, 0);
    });
    var top = niceMax(Math.max.apply(null, totals.concat([0])));
    var step = plotW / Math.max(1, labels.length);
    if (totals.some(function (t) { return t > 0; })) {
      yAxis(c.svg, top, fmt || short);
      xLabels(c.svg, labels, step);
      legend(c.svg, series);
      labels.forEach(function (label, i) {
        var y = M.t + plotH;
        series.forEach(function (ser) {
          var v = ser.values[i];
          if (!v) { return; }
          var h = plotH * v / top;
          y -= h;
          tip(svgNode(c.svg, "rect", {x: M.l + i * step + step * 0.1, y: y, width: Math.max(1, step * 0.8),
                                      height: Math.max(0.5, h), fill: ser.color}),
              label + ": " + num(v) + " " + ser.name);
          marks++;
        });
      });
    }
    done(c, marks, emptyText);
  }

  // lines over time: xs (seconds), series[k].values
  function lines(id, xs, series, emptyText) {
    var c = chart(id), marks = 0, plotW = W - M.l - M.r, plotH = H - M.t - M.b;
    var all = [0];
    series.forEach(function (s) { all = all.concat(s.values); });
    var top = niceMax(Math.max.apply(null, all)), step = plotW / Math.max(1, xs.length);
    if (xs.length) {  // a line at 0 says something too (nothing waited at the end of any interval)
      yAxis(c.svg, top, short);
      xLabels(c.svg, xs.map(when), step);
      legend(c.svg, series);
      series.forEach(function (ser) {
        var points = ser.values.map(function (v, i) {
          return (M.l + (i + 0.5) * step).toFixed(1) + "," + (M.t + plotH - plotH * v / top).toFixed(1);
        });
        svgNode(c.svg, "polyline", {points: points.join(" "), fill: "none", stroke: ser.color,
                                    "stroke-width": 2, "stroke-dasharray": ser.dash || "none"});
        ser.values.forEach(function (v, i) {
          tip(svgNode(c.svg, "circle", {cx: M.l + (i + 0.5) * step, cy: M.t + plotH - plotH * v / top, r: 2.2,
                                        fill: ser.color}), when(xs[i]) + ": " + num(v) + " " + ser.name);
          marks++;
        });
      });
    }
    done(c, marks, emptyText);
  }

  // horizontal stacked bars, one row per item: rows[i] = {label, parts: {state: n}}
  function hbars(id, rows, emptyText, labelW) {
    var fig = document.getElementById(id), rowH = 22, height = M.t + rows.length * rowH + 8;
    var chars = Math.floor(labelW / 6.2);
    var svg = svgNode(fig, "svg", {viewBox: "0 0 " + (W * 2) + " " + Math.max(height, 60), role: "img"});
    var c = {fig: fig, svg: svg}, marks = 0, width = W * 2 - labelW - 90;
    var top = Math.max.apply(null, rows.map(function (r) {
      return Object.keys(r.parts).reduce(function (s, k) { return s + r.parts[k]; }, 0);
    }).concat([0]));
    var used = STATES.filter(function (s) { return rows.some(function (r) { return r.parts[s]; }); });
    if (top > 0) { legend(svg, used.map(function (s) { return {name: s, color: COLORS[s]}; }), W * 2); }
    rows.forEach(function (row, i) {
      var y = M.t + i * rowH, x = labelW, total = 0;
      var label = row.label.length > chars ? row.label.slice(0, chars - 1) + "\u2026" : row.label;
      tip(svgNode(svg, "text", {x: labelW - 8, y: y + 15, "text-anchor": "end"}, label), row.label);
      used.concat(Object.keys(row.parts).filter(function (k) { return used.indexOf(k) < 0; }))
        .forEach(function (state) {
          var v = row.parts[state];
          if (!v) { return; }
          var w = Math.max(1, width * v / top);
          tip(svgNode(svg, "rect", {x: x, y: y + 3, width: w, height: rowH - 6,
                                    fill: COLORS[state] || "#8c959f"}),
              row.label + ": " + num(v) + " " + state);
          x += w;
          total += v;
          marks++;
        });
      svgNode(svg, "text", {x: x + 6, y: y + 15}, num(total));
    });
    done(c, marks, emptyText);
  }

  function tiles() {
    var box = document.getElementById("tiles"), t = data.totals, stats = data.duration_stats;
    var all = Object.keys(t).reduce(function (s, k) { return s + t[k]; }, 0);
    var bad = (t.failed || 0) + (t.invalid || 0) + (t.uncertain || 0);
    var rows = data.groups.reduce(function (s, g) { return s + g.rows; }, 0);
    var size = data.groups.reduce(function (s, g) { return s + g.bytes; }, 0);
    [[num(all), "objects in the ledger"], [num(t.completed || 0), "completed"],
     [num((t.submitted || 0) + (t.submitting || 0)), "running"],
     [num(bad), "failed, invalid or held", bad > 0], [short(rows), "rows imported"],
     [bytes(size), "of files"],
     [num(stats.jobs || 0), "jobs finished"],
     [stats.jobs ? duration(stats.mean_s) : "-", "mean job duration"]]
      .forEach(function (tile) {
        var div = htmlNode(box, "div", undefined, tile[2] ? "tile bad" : "tile");
        htmlNode(div, "b", tile[0]);
        htmlNode(div, "span", tile[1]);
      });
  }

  function table() {
    var t = document.getElementById("groups");
    var used = STATES.filter(function (s) { return data.groups.some(function (g) { return g.states[s]; }); });
    var head = htmlNode(t, "tr");
    ["source", "collection"].concat(used, ["bytes", "rows imported"])
      .forEach(function (h) { htmlNode(head, "th", h); });
    data.groups.forEach(function (g) {
      var tr = htmlNode(t, "tr");
      htmlNode(tr, "td", g.source);
      htmlNode(tr, "td", g.collection);
      used.forEach(function (s) { htmlNode(tr, "td", num(g.states[s] || 0)); });
      htmlNode(tr, "td", bytes(g.bytes));
      htmlNode(tr, "td", num(g.rows));
    });
  }

  function byKey(key) {
    var merged = {};
    data.groups.forEach(function (g) {
      var row = merged[g[key]] || (merged[g[key]] = {label: g[key], parts: {}});
      Object.keys(g.states).forEach(function (s) { row.parts[s] = (row.parts[s] || 0) + g.states[s]; });
    });
    return Object.keys(merged).sort().map(function (k) { return merged[k]; });
  }

  var tl = data.timeline;
  var xs = tl.map(function (b) { return b.t; });
  function col(key) { return tl.map(function (b) { return b[key]; }); }
  var cumulative = [], sum = 0;
  col("rows").forEach(function (v) { sum += v; cumulative.push(sum); });

  tiles();
  bars("imported", xs.map(when), [
    {name: "completed", color: COLORS.completed, values: col("completed")},
    {name: "failed in a job", color: COLORS.failed, values: col("job_failed")},
    {name: "refused or invalid", color: COLORS.invalid, values: col("refused")}], "no object finished yet");
  lines("rows", xs, [{name: "rows", color: COLORS.submitted, values: cumulative}], "no rows imported yet");
  lines("queue", xs, [
    {name: "jobs in flight", color: COLORS.submitted, values: col("jobs_in_flight")},
    {name: "objects in flight", color: COLORS.submitting, values: col("objects_in_flight"), dash: "5 3"}],
    "no job submitted yet");
  bars("durations", data.durations.map(function (d) { return d.label; }), [
    {name: "completed", color: COLORS.completed,
     values: data.durations.map(function (d) { return d.completed; })},
    {name: "failed", color: COLORS.failed, values: data.durations.map(function (d) { return d.failed; })}],
    "no job finished yet");
  hbars("reasons", data.reasons.map(function (r) {
    var parts = {};
    parts[r.state] = r.objects;
    return {label: r.reason, parts: parts};
  }), "no failures", 600);
  hbars("collections", byKey("collection"), "empty ledger", 260);
  hbars("sources", byKey("source"), "empty ledger", 360);
  table();
  document.body.setAttribute("data-drawn", "true");
})();
"""
