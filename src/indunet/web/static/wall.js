/* Wall screen: follow the wall's event stream (values, states, Andon calls), refresh the whole
   wall on state and call events and every 15 s; while the stream is down, poll every 1-5 s.
   Rotate views, show "link lost" and recover. The page arrives rendered by the server. */
(function () {
  "use strict";
  var body = document.body;
  var url = body.dataset.url;
  var eventsUrl = body.dataset.events;
  var views = body.dataset.views.split(",");
  var rotate = Number(body.dataset.rotate) * 1000;
  var every = Math.min(5000, Math.max(1000, Number(body.dataset.every) * 1000));
  var LIVE_REFRESH = 15000;  // OEE and Pareto are not on the stream
  var current = Number(body.dataset.view) || 0;
  var lastOk = 0;
  var loads = 0;  // whole-wall loads, in body[data-loads] (tests tell a pushed value from a poll)
  var live = false;  // the stream is open: no polling
  var source = null;
  var timer = null;
  var soon = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %"; }
  function ago(ms, now) {
    var s = Math.max(0, Math.round((now - ms) / 1000));
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min";
  }
  function reading(v, unit) {
    return (typeof v === "number" ? v.toFixed(1) : "–") + " " + unit;
  }
  function show(i) {
    current = i % views.length;
    document.querySelectorAll("section.view").forEach(function (s) { s.classList.remove("here"); });
    var s = document.getElementById("view-" + views[current]);
    if (s) { s.classList.add("here"); document.getElementById("view-name").textContent = s.dataset.name; }
  }
  function render(d) {
    var tiles = document.getElementById("tiles");
    tiles.replaceChildren();
    d.machines.forEach(function (m) {
      var t = el("div", "tile " + m.state);
      t.appendChild(el("b", "", m.state));
      t.appendChild(el("span", "", m.id.split("/").slice(-1)[0]));
      t.dataset.machine = m.id;
      if (m.since_ms) t.appendChild(el("span", "muted", " · " + ago(m.since_ms, d.now_ms)));
      if (m.power_tag) {
        var r = el("span", "reading", reading(m.power, m.unit));
        r.dataset.tag = m.power_tag;
        r.dataset.unit = m.unit;
        t.appendChild(r);
      }
      tiles.appendChild(t);
    });
    var bar = document.getElementById("andon-bar");
    bar.replaceChildren();
    var rows = document.getElementById("calls");
    rows.replaceChildren();
    d.andon.forEach(function (c) {
      var where = c.machine || c.line;
      var chip = el("span", "call " + c.state, c.reason.toUpperCase() + " · " + where.split("/").slice(-1)[0] +
        (c.state === "taken" ? " · " + c.taken_by : "") + " · " + ago(c.raised_ms, d.now_ms));
      chip.dataset.call = c.call_id;
      bar.appendChild(chip);
      var tr = el("tr");
      tr.dataset.call = c.call_id;
      [ago(c.raised_ms, d.now_ms), where, c.reason, c.note, c.state + (c.taken_by ? " (" + c.taken_by + ")" : "")]
        .forEach(function (v) { tr.appendChild(el("td", "", v)); });
      rows.appendChild(tr);
    });
    bar.classList.toggle("on", d.andon.length > 0);
    document.getElementById("no-calls").hidden = d.andon.length > 0;
    document.getElementById("shift").textContent = d.shift || "no shift running";
    var o = d.oee;
    var big = document.getElementById("oee");
    big.textContent = o ? pct(o.oee) : "–";
    big.className = "big" + (o && d.target && o.oee !== null ? (o.oee >= d.target ? " above" : " below") : "");
    document.getElementById("target").textContent = d.target ? "target " + pct(d.target) : "";
    document.getElementById("apq").textContent = o ? "A " + pct(o.availability) + " · P " + pct(o.performance) + " · Q " + pct(o.quality) : "";
    document.getElementById("good").textContent = o && o.good !== null ? "good " + Math.round(o.good) : "";
    var losses = document.getElementById("losses");
    losses.replaceChildren();
    (d.losses || []).forEach(function (l) {
      var tr = el("tr");
      tr.appendChild(el("td", "", l.reason));
      tr.appendChild(el("td", "", Math.round(l.ms / 60000) + " min"));
      var td = el("td");
      var b = el("div", "bar");
      b.style.width = Math.round(100 * l.share) + "%";
      td.appendChild(b);
      tr.appendChild(td);
      losses.appendChild(tr);
    });
  }
  function load() {
    var ctl = new AbortController();
    var abort = setTimeout(function () { ctl.abort(); }, 4000);
    return fetch(url, { credentials: "same-origin", cache: "no-store", signal: ctl.signal, headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) {
          document.getElementById("lost").textContent = "Display key revoked or not signed in: open this screen's link again.";
          throw new Error("denied");
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (d) {
        lastOk = Date.now();
        loads += 1;
        body.classList.remove("lost");
        body.dataset.updated = String(lastOk);
        body.dataset.loads = String(loads);
        render(d);
      })
      .catch(function () {
        body.classList.add("lost");
        if (source && live) {  // the stream may be stale (a server gone): poll, open a new one
          source.close();
          source = null;
          live = false;
          body.dataset.stream = "down";
          setTimeout(connect, 1000);
        }
      })
      .finally(function () { clearTimeout(abort); });
  }
  // the next whole-wall load: every 1-5 s while polling, every 15 s while the stream is open
  function next() {
    clearTimeout(timer);
    var wait = live ? LIVE_REFRESH : (body.classList.contains("lost") ? Math.min(every, 2000) : every);
    timer = setTimeout(function () { load().finally(next); }, wait);
  }
  function refreshSoon() {  // a state or call event: load the whole wall once, shortly
    if (soon) return;
    soon = setTimeout(function () { soon = null; load().finally(next); }, 150);
  }
  function parse(e) {
    try { return JSON.parse(e.data); } catch (err) { return null; }
  }
  function onValues(e) {
    var d = parse(e);
    if (!d || !d.values) return;
    d.values.forEach(function (v) {
      document.querySelectorAll(".reading[data-tag]").forEach(function (r) {
        if (r.dataset.tag !== v.tag) return;
        r.textContent = reading(v.value, r.dataset.unit);
        r.dataset.via = "event";  // pushed, not polled (a whole-wall load redraws the tile)
      });
    });
    body.dataset.event = "values:" + e.lastEventId + ":" + Date.now();
  }
  function onState(e) {
    var d = parse(e);
    if (!d) return;
    document.querySelectorAll(".tile[data-machine]").forEach(function (t) {
      if (t.dataset.machine !== d.machine) return;
      t.className = "tile " + d.state;
      t.querySelector("b").textContent = d.state;
    });
    refreshSoon();
  }
  function connect() {
    if (source || !eventsUrl || typeof EventSource === "undefined") return false;
    var es = new EventSource(eventsUrl);
    source = es;
    es.addEventListener("open", function () {
      live = true;
      body.dataset.stream = "open";
      load().finally(next);  // what happened while the stream was down
    });
    es.addEventListener("error", function () {
      if (source !== es) return;  // a stream given up already
      var was = live;
      live = false;
      body.dataset.stream = "down";
      if (was) load().finally(next);  // fall back to polling at once
      if (es.readyState === EventSource.CLOSED) {  // refused: try a new stream later
        source = null;
        setTimeout(connect, 10000);
      }
    });
    es.addEventListener("values", onValues);
    es.addEventListener("state", onState);
    es.addEventListener("andon", refreshSoon);
    return true;
  }
  function tick() { document.getElementById("clock").textContent = new Date().toLocaleTimeString(); }
  show(current);
  if (rotate > 0 && views.length > 1) setInterval(function () { show(current + 1); }, rotate);
  setInterval(tick, 1000);
  tick();
  body.dataset.stream = "down";
  connect();
  load().finally(next);  // polls until the stream opens
  window.addEventListener("pagehide", function () { if (source) source.close(); });
})();
