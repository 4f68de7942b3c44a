/* Wall screen: poll the wall data every 1-5 s, rotate views, show "link lost" and recover. */
(function () {
  "use strict";
  var body = document.body;
  var url = body.dataset.url;
  var views = body.dataset.views.split(",");
  var rotate = Number(body.dataset.rotate) * 1000;
  var every = Math.min(5000, Math.max(1000, Number(body.dataset.every) * 1000));
  var current = 0;
  var lastOk = 0;

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
      if (m.since_ms) t.appendChild(el("span", "muted", " · " + ago(m.since_ms, d.now_ms)));
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
    document.getElementById("good").textContent = o ? "good " + Math.round(o.good) : "";
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
  function poll() {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, 4000);
    fetch(url, { credentials: "same-origin", cache: "no-store", signal: ctl.signal, headers: { Accept: "application/json" } })
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
        body.classList.remove("lost");
        body.dataset.updated = String(lastOk);
        render(d);
      })
      .catch(function () {
        body.classList.add("lost");
      })
      .finally(function () {
        clearTimeout(timer);
        setTimeout(poll, body.classList.contains("lost") ? Math.min(every, 2000) : every);
      });
  }
  function tick() { document.getElementById("clock").textContent = new Date().toLocaleTimeString(); }
  show(0);
  if (rotate > 0 && views.length > 1) setInterval(function () { show(current + 1); }, rotate);
  setInterval(tick, 1000);
  tick();
  poll();
})();
