// Supply-chain network page: the ECharts graph of #chain-graph-data (embedded by the server,
// already filtered and, when large, summarised per region x tier), and the scenario runner:
// POST /api/v1/chain/networks/{name}/scenarios with the session's CSRF token, then the saved
// result's fragment (/parts/chain/{name}/scenario?scenario=...) replaces #chain-result.
(function () {
  "use strict";

  // 16 distinguishable colours, readable on the light and the dark background
  var REGION_COLOURS = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272",
    "#fc8452", "#9a60b4", "#ea7ccc", "#1f9e89", "#c23531", "#61a0a8", "#d48265", "#b5b80b",
    "#ca8622", "#8c8cd8"];
  var PRODUCTS = "products";

    function palette() {
    var css = getComputedStyle(document.documentElement);
    function v(name, fallback) { return (css.getPropertyValue(name) || fallback).trim(); }
    return { fg: v("--fg", "#1b1f24"), muted: v("--muted", "#5c6670"), line: v("--line", "#d8dde3"),
             bad: v("--bad", "#cf222e"), accent: v("--accent", "#0b5cad") };
  }

  function drawGraph() {
    var holder = document.getElementById("chain-graph-data");
    var el = document.getElementById("chain-graph");
    if (!holder || !el || typeof echarts === "undefined") return;
    var data = JSON.parse(holder.textContent);
    if (!data.nodes.length) { el.classList.add("chain-graph-empty"); return; }
    var c = palette();
    var tiers = {};
    data.nodes.forEach(function (n) { (tiers[n.tier] = tiers[n.tier] || []).push(n); });
    var tierKeys = Object.keys(tiers).map(Number).sort(function (a, b) { return a - b; });
    var width = Math.max(tierKeys.length - 1, 1);
    // layered layout: tiers left to right, nodes of a tier spread top to bottom
    var nodes = [];
    var scale = el.clientWidth < 600 ? 0.55 : 1;  // a phone: smaller symbols
    tierKeys.forEach(function (t, ti) {
      var col = tiers[t];
      col.sort(function (a, b) { return a.category - b.category || (a.name < b.name ? -1 : 1); });
      col.forEach(function (n, i) {
        var size = (data.summarised ? 6 + 4 * Math.sqrt(n.value) : 8) * scale;
        nodes.push({
          id: n.id, name: n.name, category: n.category, value: n.value,
          x: (ti / width) * 1000, y: ((i + 0.5) / col.length) * 600,
          symbolSize: n.id.indexOf("market:") === 0 ? 14 : size,
          itemStyle: n.flagged ? { borderColor: c.bad, borderWidth: 2 } : undefined,
          raw: n
        });
      });
    });
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      textStyle: { color: c.fg },
      legend: { type: "scroll", top: 0, textStyle: { color: c.fg },
                data: data.categories.map(function (name) { return name; }) },
      tooltip: {
        formatter: function (p) {
          var enc = echarts.format.encodeHTML;
          if (p.dataType === "edge") {
            return enc(p.data.source) + " → " + enc(p.data.target) +
              (data.summarised ? "<br>" + p.data.value + " supply relations" : "");
          }
          var n = p.data.raw || {};
          if (data.summarised && n.id.indexOf("market:") !== 0) {
            return enc(n.name) + "<br>" + n.value + " sites" + (n.flagged ? ", " + n.flagged + " at risk or critical" : "");
          }
          return enc(n.name) + (n.item ? "<br>makes " + enc(n.item) : "") +
            (n.region ? "<br>" + enc(n.region) + (n.industry ? " · " + enc(n.industry) : "") : "") +
            (n.flagged ? "<br>at risk or critical" : "");
        }
      },
      series: [{
        type: "graph", layout: "none", roam: true, top: 40, bottom: 10, left: 20,
        right: el.clientWidth < 600 ? 70 : 120,
        categories: data.categories.map(function (name, i) {
          return PRODUCTS === name && i === data.categories.length - 1
            ? { name: name, symbol: "diamond", itemStyle: { color: c.fg } }
            : { name: name, itemStyle: { color: REGION_COLOURS[i % REGION_COLOURS.length] } };
        }),
        data: nodes,
        links: data.links.map(function (l) {
          return { source: l.source, target: l.target, value: l.value,
                   lineStyle: data.summarised ? { width: Math.min(1 + Math.log(l.value), 6) } : undefined };
        }),
        edgeSymbol: ["none", "arrow"], edgeSymbolSize: 5,
        lineStyle: { color: c.muted, opacity: 0.35, curveness: 0.1 },
        label: { show: data.summarised || nodes.length <= 60, position: "right", fontSize: 10, color: c.fg,
                 formatter: function (p) { return p.name.replace(/^market:/, ""); } },
        labelLayout: { hideOverlap: true },
        emphasis: { focus: "adjacency", lineStyle: { opacity: 0.9 } }
      }]
    });
    el.dataset.nodes = String(nodes.length);
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function runner() {
    var form = document.querySelector(".chain-run-form");
    var box = document.getElementById("chain-result");
    if (!form || !box) return;
    var status = form.querySelector(".chain-run-status");
    var network = form.dataset.network;
    var tenant = form.dataset.enterprise ? "enterprise=" + encodeURIComponent(form.dataset.enterprise) : "";

    function problem(r) {
      return r.json().then(function (body) {
        var d = body && body.detail;
        throw new Error(typeof d === "string" ? d : (r.status + " " + r.statusText));
      }, function () { throw new Error(r.status + " " + r.statusText); });
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var f = new FormData(form);
      var doc = { weeks: Number(f.get("weeks")) };
      var name = String(f.get("name") || "").trim();
      if (name) doc.name = name;
      if (f.get("region")) doc.region = String(f.get("region"));
      if (f.get("item")) doc.item = String(f.get("item"));
      var sites = String(f.get("sites") || "").split(",").map(function (s) { return s.trim(); })
        .filter(function (s) { return s; });
      if (sites.length) doc.sites = sites;
      var button = form.querySelector("button");
      button.disabled = true;
      status.textContent = "running…";
      var base = "/api/v1/chain/networks/" + encodeURIComponent(network) + "/scenarios";
      fetch(base + (tenant ? "?" + tenant : ""), {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json",
                   "X-CSRF-Token": form.dataset.csrf || "" },
        body: JSON.stringify(doc)
      }).then(function (r) { return r.ok ? r.json() : problem(r); })
        .then(function (result) {
          var saved = result.scenario.name || result.label;
          var url = "/parts/chain/" + encodeURIComponent(network) + "/scenario?scenario=" +
            encodeURIComponent(saved) + (tenant ? "&" + tenant : "");
          return fetch(url, { credentials: "same-origin" }).then(function (r) {
            if (!r.ok) throw new Error(r.status + " " + r.statusText);
            return r.text();
          }).then(function (html) {
            box.innerHTML = html;
            status.textContent = "done: " + result.products_hit + " product" +
              (result.products_hit === 1 ? "" : "s") + " hit (saved; reload to compare)";
          });
        })
        .catch(function (err) { status.textContent = "could not run: " + err.message; })
        .then(function () { button.disabled = false; });
    });
  }

  function start() { drawGraph(); runner(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
