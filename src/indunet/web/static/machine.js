// Machine page: one ECharts line chart per numeric tag, the state timeline (Gantt), today's OEE
// losses (waterfall) and the form that gives stops a reason.
// Tag data comes from /api/v1/series?width=<chart px>: the server downsamples (M4) so a chart
// gets about its pixel width in points. Zooming (dataZoom) refetches the visible window at full
// detail; while not zoomed, the charts follow the clock every REFRESH_MS.
(function () {
  "use strict";
  var REFRESH_MS = 10000;
  var NARROW_PX = 480; // below this chart width: fewer, shorter time labels
  var STATES = ["running", "idle", "off", "offline"];
  var STATE_VARS = { running: "--good", idle: "--warn", off: "--stale", offline: "--bad" };
  if (typeof echarts === "undefined") return;

  function debounce(fn, ms) {
    var t = null;
    return function () {
      clearTimeout(t);
      t = setTimeout(fn, ms);
    };
  }

  function isDark() {
    var theme = document.documentElement.dataset.theme;
    if (theme) return theme === "dark";
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : r.statusText);
        return body;
      }, function () { throw new Error(r.statusText || "bad response"); });
    });
  }

  function message(text) {
    return text ? { text: text, left: "center", top: "middle",
                    textStyle: { fontSize: 13, fontWeight: "normal", color: cssVar("--muted") } }
                : { text: "" };
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // local clock time of an epoch-ms value, with the date when it is not today
  function clock(ms, withSeconds) {
    var d = new Date(ms);
    var t = pad(d.getHours()) + ":" + pad(d.getMinutes()) + (withSeconds ? ":" + pad(d.getSeconds()) : "");
    var now = new Date();
    if (d.toDateString() === now.toDateString()) return t;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + t;
  }

  function duration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + pad(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min";
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // axis lines and grid lines in the page's colours (readable in dark and light)
  function axisColours(axis) {
    axis.axisLine = { lineStyle: { color: cssVar("--muted") || "#888" } };
    axis.splitLine = axis.splitLine || {};
    axis.splitLine.lineStyle = { color: cssVar("--line") || "#ddd" };
    axis.axisLabel = axis.axisLabel || {};
    axis.axisLabel.color = cssVar("--muted") || "#888";
    return axis;
  }

  // a time axis that stays readable on a 390 px phone: at most about 4 ticks, short labels,
  // no overlap
  function timeAxis(el, min, max) {
    var narrow = el.clientWidth < NARROW_PX;
    return axisColours({
      type: "time", min: min, max: max, splitNumber: narrow ? 3 : 6,
      minInterval: narrow ? Math.floor((max - min) / 4) : undefined,
      axisLabel: {
        hideOverlap: true, fontSize: narrow ? 10 : 12,
        formatter: { year: "{yyyy}", month: "{MMM}", day: "{d} {MMM}", hour: "{HH}:{mm}",
                     minute: "{HH}:{mm}", second: "{HH}:{mm}:{ss}", millisecond: "{HH}:{mm}:{ss}" }
      }
    });
  }

  function baseOption() {
    var dark = isDark();
    return { animation: false, darkMode: dark, textStyle: { color: dark ? "#e6e9ec" : "#1b1f24" } };
  }

  // ------------------------------------------------------------------------ tag charts
  function fetchPoints(tag, start, end, width) {
    var q = new URLSearchParams({ tag: tag, start: String(start), end: String(end),
                                  width: String(Math.max(3, Math.round(width))) });
    return getJSON("/api/v1/series?" + q.toString()).then(function (body) {
      return body.rows.map(function (p) { return [p.ts, p.value]; });
    });
  }

  // anomaly windows of this machine (server-side evidence), shaded on each tag's chart
  function anomalyAreas(tag) {
    var box = document.getElementById("charts");
    var all = [];
    try { all = JSON.parse((box && box.dataset.anomalies) || "[]"); } catch (e) { all = []; }
    return all.filter(function (a) { return a.tag === tag; }).map(function (a) {
      var end = Math.max(a.ts_ms, a.since_ms) + 60000;
      return [{ xAxis: a.since_ms, name: "anomaly " + a.score.toFixed(2) }, { xAxis: end }];
    });
  }

  function Chart(el, rangeMs) {
    this.el = el;
    this.tag = el.dataset.tag;
    this.areas = anomalyAreas(this.tag);
    this.rangeMs = rangeMs;
    this.chart = echarts.init(el, null, { renderer: "canvas" });
    this.overview = [];
    this.window = null; // [start, end] ms while zoomed
    this.seq = 0;
    this.end = Date.now();
    this.start = this.end - rangeMs;
    var epoch = el.dataset.kind === "epoch_ms"; // a time stored as epoch ms: show clock times
    var yLabel = epoch ? { formatter: function (v) { return clock(v, true); } } : {};
    var option = baseOption();
    option.grid = { left: 8, right: 16, top: 24, bottom: 56, containLabel: true };
    option.tooltip = { trigger: "axis",
                       valueFormatter: epoch ? function (v) { return clock(v, true); } : undefined };
    option.xAxis = timeAxis(el, this.start, this.end);
    option.yAxis = axisColours({ type: "value", scale: true, name: el.dataset.unit || "",
                                 axisLabel: yLabel });
    option.dataZoom = [
      { type: "inside", filterMode: "none" },
      { type: "slider", filterMode: "none", height: 22, bottom: 6, labelFormatter: "" }
    ];
    option.series = [{
      type: "line", name: el.dataset.name, showSymbol: false, data: [],
      step: el.dataset.type === "boolean" ? "end" : false, lineStyle: { width: 1.5 },
      markArea: { silent: false, itemStyle: { color: "rgba(214, 39, 40, 0.15)" },
                  label: { show: true, position: "insideTop", fontSize: 10 },
                  data: this.areas }
    }];
    el.dataset.anomalies = String(this.areas.length);
    option.title = message("loading…");
    this.chart.setOption(option);
    this.chart.on("datazoom", debounce(this.zoomed.bind(this), 250));
  }

  Chart.prototype.show = function (data, note) {
    this.chart.setOption({
      xAxis: timeAxis(this.el, this.start, this.end),
      series: [{ data: data, showSymbol: data.length < 60 }],
      title: message(note || (data.length ? "" : "no data in this range"))
    });
    this.el.dataset.points = String(data.length);
  };

  Chart.prototype.load = function () {
    var self = this;
    var seq = ++self.seq;
    if (!self.window) {
      self.end = Date.now();
      self.start = self.end - self.rangeMs;
    }
    return fetchPoints(self.tag, self.start, self.end, self.el.clientWidth).then(function (rows) {
      if (seq !== self.seq) return;
      self.overview = rows;
      self.show(self.window ? self.merge(self.detail || []) : rows);
    }).catch(function (err) {
      if (seq === self.seq) self.show(self.overview, "could not load: " + err.message);
    });
  };

  // overview points outside the zoom window, detail points inside it
  Chart.prototype.merge = function (detail) {
    var w = this.window;
    var before = this.overview.filter(function (p) { return p[0] < w[0]; });
    var after = this.overview.filter(function (p) { return p[0] >= w[1]; });
    return before.concat(detail, after);
  };

  Chart.prototype.zoomed = function () {
    var self = this;
    var dz = self.chart.getOption().dataZoom[0];
    var span = self.end - self.start;
    if (dz.start <= 0 && dz.end >= 100) {
      self.window = null;
      self.detail = null;
      self.show(self.overview);
      return;
    }
    var w = [Math.floor(self.start + span * dz.start / 100),
             Math.ceil(self.start + span * dz.end / 100) + 1];
    if (w[1] - w[0] < 2) return;
    self.window = w;
    var seq = ++self.seq;
    var width = self.el.clientWidth;
    fetchPoints(self.tag, w[0], w[1], width).then(function (rows) {
      if (seq !== self.seq) return;
      self.detail = rows;
      self.show(self.merge(rows));
    }).catch(function (err) {
      if (seq === self.seq) self.show(self.overview, "could not load: " + err.message);
    });
  };

  // ------------------------------------------------------------------------ state timeline
  function Timeline(el) {
    this.el = el;
    this.machine = el.dataset.machine;
    this.rangeMs = Number(el.dataset.rangeMs);
    this.chart = echarts.init(el, null, { renderer: "canvas" });
    this.seq = 0;
    var colors = {};
    STATES.forEach(function (s) { colors[s] = cssVar(STATE_VARS[s]) || "#888"; });
    this.colors = colors;
    var option = baseOption();
    option.grid = { left: 8, right: 16, top: 8, bottom: 28, containLabel: true };
    option.tooltip = { trigger: "item", confine: true, formatter: function (p) {
      var v = p.value;
      var lines = ["<b>" + escapeHtml(STATES[v[2]]) + "</b>" + (v[4] ? " (still open)" : ""),
                   clock(v[0], true) + " – " + clock(v[1], true), duration(v[1] - v[0])];
      if (v[3]) lines.push("reason: " + escapeHtml(v[3]));
      return lines.join("<br>");
    } };
    option.xAxis = timeAxis(el, Date.now() - this.rangeMs, Date.now());
    option.yAxis = axisColours({ type: "category", data: STATES, inverse: true,
                                 axisTick: { show: false }, splitLine: { show: true } });
    option.dataZoom = [{ type: "inside", filterMode: "weakFilter" }];
    option.series = [{
      type: "custom", name: "states", encode: { x: [0, 1], y: 2 }, data: [],
      renderItem: function (params, api) {
        var lo = api.coord([api.value(0), api.value(2)]);
        var hi = api.coord([api.value(1), api.value(2)]);
        var h = api.size([0, 1])[1] * 0.7;
        var shape = echarts.graphic.clipRectByRect(
          { x: lo[0], y: lo[1] - h / 2, width: Math.max(hi[0] - lo[0], 1), height: h },
          { x: params.coordSys.x, y: params.coordSys.y,
            width: params.coordSys.width, height: params.coordSys.height });
        return shape && { type: "rect", transition: [], shape: shape,
                          style: { fill: colors[STATES[api.value(2)]] } };
      }
    }];
    option.title = message("loading…");
    this.chart.setOption(option);
  }

  Timeline.prototype.load = function () {
    var self = this;
    var seq = ++self.seq;
    var end = Date.now();
    var start = end - self.rangeMs;
    var q = new URLSearchParams({ machine: self.machine, start: String(start), end: String(end) });
    return getJSON("/api/v1/states?" + q.toString()).then(function (body) {
      if (seq !== self.seq) return;
      var data = body.rows.map(function (r) {
        // the reason's label; "(machine)" when the machine reported it, not an operator
        var why = r.reason ? (r.reason_label || r.reason) + (r.proposed ? " (machine)" : "") : "";
        return [r.start_ms, r.end_ms, STATES.indexOf(r.state), why, r.open ? 1 : 0];
      });
      self.chart.setOption({
        xAxis: timeAxis(self.el, start, end),
        series: [{ data: data }],
        title: message(data.length ? "" : "no stored states in this range")
      });
      self.el.dataset.segments = String(data.length);
    }).catch(function (err) {
      if (seq === self.seq) self.chart.setOption({ title: message("could not load: " + err.message) });
    });
  };

  // ------------------------------------------------------------------------ OEE waterfall
  function Waterfall(el) {
    this.el = el;
    this.scope = el.dataset.scope;
    this.startMs = Number(el.dataset.startMs);
    this.line = document.getElementById("oee-line");
    this.chart = echarts.init(el, null, { renderer: "canvas" });
    var option = baseOption();
    option.grid = { left: 8, right: 16, top: 24, bottom: 8, containLabel: true };
    option.tooltip = { trigger: "axis", axisPointer: { type: "shadow" }, formatter: function (ps) {
      var p = ps.filter(function (x) { return x.seriesIndex === 1; })[0];
      return p ? escapeHtml(p.name) + ": " + p.value.toFixed(2) + " h" : "";
    } };
    option.title = message("loading…");
    this.chart.setOption(option);
  }

  // bar names on a phone: the caption says these are losses
  var SHORT = { "Planned": "Plan", "Availability loss": "Avail.", "Performance loss": "Perf.",
                "Quality loss": "Qual.", "OEE": "OEE" };

  function pct(x) { return x === null || x === undefined ? "—" : (x * 100).toFixed(1) + " %"; }

  // planned time → availability loss → performance loss → quality loss → OEE time, in hours
  Waterfall.prototype.bars = function (t) {
    var H = 3600000;
    var planned = t.pbt_ms / H;
    var run = t.apt_ms / H;
    var bars = [["Planned", 0, planned, "--accent"], ["Availability loss", run, planned - run, "--bad"]];
    if (t.performance === null || t.performance === undefined) return { bars: bars, partial: true };
    var net = Math.min(t.ideal_ms / H, run);
    var good = t.quality === null || t.quality === undefined ? 0 : net * t.quality;
    bars.push(["Performance loss", net, run - net, "--warn"]);
    bars.push(["Quality loss", good, net - good, "--warn"]);
    bars.push(["OEE", 0, good, "--good"]);
    return { bars: bars, partial: false };
  };

  Waterfall.prototype.load = function () {
    var self = this;
    var q = new URLSearchParams({ scope: self.scope, start: String(self.startMs) });
    return getJSON("/api/v1/oee?" + q.toString()).then(function (body) {
      var t = body.total;
      if (!t.pbt_ms) {
        self.chart.setOption({ title: message("no planned time today (shift calendar)") });
        self.el.dataset.bars = "0";
        self.line.textContent = "";
        return;
      }
      var out = self.bars(t);
      var names = out.bars.map(function (b) { return b[0]; });
      var narrow = self.el.clientWidth < NARROW_PX;
      self.chart.setOption({
        title: message(""),
        xAxis: axisColours({ type: "category", data: names,
                 axisLabel: { interval: 0, fontSize: narrow ? 11 : 12, hideOverlap: false,
                              formatter: function (v) { return (narrow ? SHORT[v] : null) || v; } } }),
        yAxis: axisColours({ type: "value", name: "h" }),
        series: [
          { type: "bar", stack: "w", silent: true, itemStyle: { color: "transparent" },
            data: out.bars.map(function (b) { return b[1]; }) },
          { type: "bar", stack: "w", barMaxWidth: 48,
            label: { show: true, position: "top", formatter: function (p) { return p.value.toFixed(1); } },
            data: out.bars.map(function (b) {
              return { value: Math.max(b[2], 0), itemStyle: { color: cssVar(b[3]) || "#888" } };
            }) }
        ]
      });
      self.el.dataset.bars = String(out.bars.length);
      self.line.textContent = "OEE " + pct(t.oee) + " = A " + pct(t.availability) + " × P " +
        pct(t.performance) + " × Q " + pct(t.quality) +
        (out.partial ? " · performance unknown: set the machine's ideal_cycle_s" : "");
      // a figure outside [0, 1] is never shown as good: flag it with its likely cause
      var old = self.line.parentNode.querySelector(".implausible");
      if (old) old.remove();
      if (t.plausible === false) {
        var causes = (t.implausible || []).map(function (f) { return f.cause; });
        var flag = document.createElement("span");
        flag.className = "implausible";
        flag.setAttribute("role", "note");
        flag.textContent = "⚠ implausible";
        flag.title = causes.join("\n") || "a figure lies outside [0, 1]";
        flag.setAttribute("aria-label", "implausible: " + flag.title);
        self.line.parentNode.insertBefore(flag, self.line.nextSibling);
        self.el.dataset.implausible = "1";
      }
    }).catch(function (err) {
      self.chart.setOption({ title: message("could not load: " + err.message) });
    });
  };

  // ------------------------------------------------------------------------ stop reasons
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }

  function setReason(form, timeline) {
    var box = document.getElementById("stops");
    var item = form.closest(".stop");
    var out = form.querySelector(".result");
    var body = { machine: box.dataset.machine, start_ms: Number(form.elements.start_ms.value),
                 reason: form.elements.reason.value };
    out.textContent = "saving…";
    fetch(form.getAttribute("action"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json",
                 "X-CSRF-Token": box.dataset.csrf || cookie("indunet_csrf") },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (doc) {
        if (!r.ok) throw new Error(typeof doc.detail === "string" ? doc.detail : r.statusText);
        var shown = item.querySelector(".reason");
        var picked = form.elements.reason.selectedOptions[0];  // the label, not the code
        shown.textContent = picked && picked.value === doc.reason ? picked.textContent : doc.reason;
        shown.classList.remove("none");
        item.dataset.saved = doc.reason;
        out.textContent = "saved";
        if (timeline) timeline.load();
      });
    }).catch(function (err) {
      out.textContent = "not saved: " + err.message;
    });
  }

  // ------------------------------------------------------------------------ wiring
  var all = [];
  var timeline = null;
  var tlEl = document.getElementById("timeline");
  if (tlEl) { timeline = new Timeline(tlEl); all.push(timeline); }
  var wfEl = document.getElementById("waterfall");
  var waterfall = wfEl ? new Waterfall(wfEl) : null;
  if (waterfall) all.push(waterfall);
  var box = document.getElementById("charts");
  var charts = box ? Array.prototype.map.call(box.querySelectorAll(".chart[data-tag]"), function (el) {
    return new Chart(el, Number(box.dataset.rangeMs));
  }) : [];
  all.forEach(function (c) { c.load(); });
  charts.forEach(function (c) { c.load(); });
  setInterval(function () {
    if (document.hidden) return;
    all.forEach(function (c) { c.load(); });
    charts.forEach(function (c) { if (!c.window) c.load(); });
  }, REFRESH_MS);

  document.addEventListener("submit", function (e) {
    var form = e.target.closest && e.target.closest(".reason-form");
    if (!form) return;
    e.preventDefault();
    setReason(form, timeline);
  });

  // the theme button (live.js) flips dark / light: redraw in the new colours
  document.addEventListener("click", function (e) {
    if (!e.target.closest || !e.target.closest(".theme-toggle")) return;
    setTimeout(function () {
      if (timeline) STATES.forEach(function (s) { timeline.colors[s] = cssVar(STATE_VARS[s]) || "#888"; });
      all.concat(charts).forEach(function (c) {
        var opt = baseOption();
        opt.yAxis = axisColours({});
        c.chart.setOption(opt);
      });
      charts.forEach(function (c) { c.show(c.window ? c.merge(c.detail || []) : c.overview); });
      all.forEach(function (c) { c.load(); });
    }, 0);
  });

  window.addEventListener("resize", debounce(function () {
    all.concat(charts).forEach(function (c) { c.chart.resize(); });
    charts.forEach(function (c) { c.show(c.window ? c.merge(c.detail || []) : c.overview); });
    all.forEach(function (c) { c.load(); }); // axis labels and bar names follow the width
  }, 200));
})();
