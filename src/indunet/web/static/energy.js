// Energy page: one stacked bar chart (running / idle / off kWh per hour or day) from the
// numbers the server rendered into data-chart; no extra request. Today's page is fetched again
// every 30 s (htmx swaps #energy-live): the chart is drawn again from the new numbers.
(function () {
  "use strict";
  var chart = null;
  function draw() {
  var el = document.getElementById("energy-chart");
  if (!el || typeof echarts === "undefined") return;
  if (chart) { chart.dispose(); chart = null; }
  var data = JSON.parse(el.dataset.chart);
  var css = getComputedStyle(document.documentElement);
  function color(name, fallback) { return (css.getPropertyValue(name) || fallback).trim(); }
  chart = echarts.init(el, null, { renderer: "canvas" });
  function bar(name, values, c) {
    return { name: name, type: "bar", stack: "kwh", data: values, itemStyle: { color: c },
             emphasis: { focus: "series" } };
  }
  var series = [
    bar("running", data.running, color("--good", "#1a7f37")),
    bar("idle", data.idle, color("--warn", "#9a6700")),
    bar("off", data.off, color("--stale", "#6e7781"))
  ];
  if (data.other.some(function (v) { return v > 0; })) {
    series.push(bar("no state", data.other, color("--accent", "#0b5cad")));
  }
  chart.setOption({
    animation: false,
    textStyle: { color: color("--fg", "#1b1f24") },
    legend: { top: 0, textStyle: { color: color("--fg", "#1b1f24") } },
    grid: { left: 8, right: 12, top: 32, bottom: 8, containLabel: true },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    xAxis: { type: "category", data: data.labels },
    yAxis: { type: "value", name: "kWh" },
    series: series
  });
  el.dataset.bars = String(data.labels.length);
  }
  draw();
  var t = null;
  window.addEventListener("resize", function () {
    clearTimeout(t);
    t = setTimeout(function () { if (chart) chart.resize(); }, 200);
  });
  document.addEventListener("htmx:after:swap", function () {
    var el = document.getElementById("energy-chart");
    if (el && !el.dataset.bars) draw();  // a fresh chart element came in
  });
})();
