// Machine page: one ECharts line chart per numeric tag.
// Data comes from /api/v1/series?width=<chart px>: the server downsamples (M4) so a chart gets
// about its pixel width in points. Zooming (dataZoom) refetches the visible window at full
// detail; while not zoomed, the chart follows the clock every REFRESH_MS.
(function () {
  "use strict";
  var REFRESH_MS = 10000;
  var box = document.getElementById("charts");
  if (!box || typeof echarts === "undefined") return;
  var rangeMs = Number(box.dataset.rangeMs);

  function debounce(fn, ms) {
    var t = null;
    return function () {
      clearTimeout(t);
      t = setTimeout(fn, ms);
    };
  }

  function fetchPoints(tag, start, end, width) {
    var q = new URLSearchParams({ tag: tag, start: String(start), end: String(end),
                                  width: String(Math.max(3, Math.round(width))) });
    return fetch("/api/v1/series?" + q.toString()).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : r.statusText);
        return body.rows.map(function (p) { return [p.ts, p.value]; });
      });
    });
  }

  function message(text) {
    return text ? { text: text, left: "center", top: "middle",
                    textStyle: { fontSize: 13, fontWeight: "normal" } } : { text: "" };
  }

  function Chart(el) {
    this.el = el;
    this.tag = el.dataset.tag;
    this.chart = echarts.init(el, null, { renderer: "canvas" });
    this.overview = [];
    this.window = null; // [start, end] ms while zoomed
    this.seq = 0;
    this.end = Date.now();
    this.start = this.end - rangeMs;
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    this.chart.setOption({
      animation: false,
      darkMode: dark,
      textStyle: { color: dark ? "#e6e9ec" : "#1b1f24" },
      grid: { left: 8, right: 16, top: 24, bottom: 56, containLabel: true },
      tooltip: { trigger: "axis" },
      xAxis: { type: "time", min: this.start, max: this.end },
      yAxis: { type: "value", scale: true, name: el.dataset.unit || "" },
      dataZoom: [
        { type: "inside", filterMode: "none" },
        { type: "slider", filterMode: "none", height: 22, bottom: 6 }
      ],
      series: [{
        type: "line", name: el.dataset.name, showSymbol: false, data: [],
        step: el.dataset.type === "boolean" ? "end" : false, lineStyle: { width: 1.5 }
      }],
      title: message("loading…")
    });
    this.chart.on("datazoom", debounce(this.zoomed.bind(this), 250));
  }

  Chart.prototype.show = function (data, note) {
    this.chart.setOption({
      xAxis: { min: this.start, max: this.end },
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
      self.start = self.end - rangeMs;
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

  var charts = Array.prototype.map.call(box.querySelectorAll(".chart[data-tag]"), function (el) {
    return new Chart(el);
  });
  charts.forEach(function (c) { c.load(); });
  setInterval(function () {
    if (document.hidden) return;
    charts.forEach(function (c) { if (!c.window) c.load(); });
  }, REFRESH_MS);
  window.addEventListener("resize", debounce(function () {
    charts.forEach(function (c) { c.chart.resize(); });
  }, 200));
})();
