// Regional resumption pages: the province map (ECharts map series over the vendored
// /static/china-provinces.json) and the trend chart. Their data is embedded in the page as JSON
// (#region-data), computed by the same calls as /api/v1/region/...; nothing is fetched from the
// internet.
(function () {
  "use strict";
  var holder = document.getElementById("region-data");
  if (!holder || typeof echarts === "undefined") return;
  var data = JSON.parse(holder.textContent);
  var charts = [];

  function palette() {
    var css = getComputedStyle(document.documentElement);
    function v(name, fallback) { return (css.getPropertyValue(name) || fallback).trim(); }
    return { fg: v("--fg", "#1b1f24"), muted: v("--muted", "#5c6670"), line: v("--line", "#d8dde3"),
             card: v("--card", "#fff"), good: v("--good", "#1a7f37"), warn: v("--warn", "#9a6700"),
             bad: v("--bad", "#cf222e"), accent: v("--accent", "#0b5cad") };
  }

  function fmt(value, digits, suffix) {
    return value === null || value === undefined ? "n/a" : value.toFixed(digits) + (suffix || "");
  }

  function drawMap(el, geo) {
    var c = palette();
    var byName = {};
    data.map.rows.forEach(function (r) { byName[r.name] = r; });
    echarts.registerMap("china-provinces", geo);
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      textStyle: { color: c.fg },
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          var r = byName[p.name];
          if (!r) return echarts.format.encodeHTML(p.name) + ": no enterprises";
          return echarts.format.encodeHTML(r.name) + "<br>resumed " + fmt(r.value, 1, " %") +
            (r.change === null ? "" : " (" + (r.change >= 0 ? "+" : "") + r.change.toFixed(1) +
             " points)") + "<br>production index " + fmt(r.index, 2) +
            "<br>" + r.reporting.toLocaleString() + " reporting";
        }
      },
      // steps at the thresholds people read (DESIGN.md: provinces above 90 % / 95 %), colours
      // far apart (75 % and 95 % must not look alike), a legend in its own row under the map
      visualMap: {
        type: "piecewise", orient: "horizontal", left: "center", bottom: 0,
        itemWidth: 14, itemHeight: 10, itemGap: 6, textGap: 3,
        textStyle: { color: c.fg, fontSize: 11 },
        pieces: [
          { min: 95, max: 100, label: "≥95 %", color: "#1a9850" },
          { min: 90, max: 95, label: "90–95", color: "#91cf60" },
          { min: 75, max: 90, label: "75–90", color: "#fee08b" },
          { min: 50, max: 75, label: "50–75", color: "#fc8d59" },
          { min: 0, max: 50, label: "<50 %", color: "#d73027" }
        ]
      },
      series: [{
        type: "map", map: "china-provinces", nameMap: data.map.names, roam: false,
        layoutCenter: ["50%", "46%"], layoutSize: "92%",
        label: { show: false }, emphasis: { label: { show: true, color: c.fg } },
        itemStyle: { areaColor: c.card, borderColor: c.muted, borderWidth: 0.6 },
        data: data.map.rows.map(function (r) { return { name: r.name, value: r.value }; })
      }]
    });
    chart.on("click", function (p) {
      if (byName[p.name]) {
        window.location.href = "/region/" + encodeURIComponent(p.name) + "?date=" +
          encodeURIComponent(data.date) + "&theta=" + encodeURIComponent(data.theta);
      }
    });
    el.dataset.provinces = String(data.map.rows.length);
    charts.push(chart);
  }

  function drawTrend(el) {
    var c = palette();
    var chart = echarts.init(el, null, { renderer: "canvas" });
    var marker = data.trend.some(function (r) { return r.day === data.date; });
    chart.setOption({
      animation: false,
      textStyle: { color: c.fg },
      grid: { left: 8, right: 16, top: 36, bottom: 56, containLabel: true },
      legend: { top: 0, textStyle: { color: c.fg } },
      tooltip: { trigger: "axis", valueFormatter: function (v) { return fmt(v, 1, " %"); } },
      xAxis: { type: "category", data: data.trend.map(function (r) { return r.day; }),
               axisLabel: { color: c.muted } },
      yAxis: { type: "value", min: 0, axisLabel: { color: c.muted, formatter: "{value} %" },
               splitLine: { lineStyle: { color: c.line } } },
      dataZoom: [{ type: "inside" }, { type: "slider", height: 22, bottom: 6 }],
      series: [
        { name: "resumption rate", type: "line", showSymbol: false, connectNulls: false,
          lineStyle: { width: 2 }, itemStyle: { color: c.accent },
          data: data.trend.map(function (r) { return r.rate; }),
          markLine: marker ? { symbol: "none", label: { show: false },
                               lineStyle: { color: c.muted, type: "dashed" },
                               data: [{ xAxis: data.date }] } : undefined },
        { name: "production index", type: "line", showSymbol: false, connectNulls: false,
          lineStyle: { width: 1.5 }, itemStyle: { color: c.warn },
          data: data.trend.map(function (r) { return r.index; }) }
      ],
      title: data.trend.length ? { text: "" } :
        { text: "no days with readings", left: "center", top: "middle",
          textStyle: { fontSize: 13, fontWeight: "normal", color: c.muted } }
    });
    el.dataset.days = String(data.trend.length);
    charts.push(chart);
  }

  var mapEl = document.getElementById("region-map");
  if (mapEl && data.map) {
    fetch(data.map.file).then(function (r) {
      if (!r.ok) throw new Error(r.statusText);
      return r.json();
    }).then(function (geo) { drawMap(mapEl, geo); }).catch(function (err) {
      mapEl.textContent = "The map could not be drawn (" + err.message + "); the table below " +
        "has the same figures.";
    });
  }
  var trendEl = document.getElementById("region-trend");
  if (trendEl && data.trend) drawTrend(trendEl);

  var resize = null;
  window.addEventListener("resize", function () {
    clearTimeout(resize);
    resize = setTimeout(function () { charts.forEach(function (ch) { ch.resize(); }); }, 150);
  });
})();
