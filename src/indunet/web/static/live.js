// Live updates and the link banner; the theme button.
// - Show a banner while live updates fail (server gone, network down); hide it on the next success.
// - Pages with live elements ([data-live-tag="<tag path>"] or [data-live]) open one event stream
//   (GET /api/v1/events, Server-Sent Events): a `values` event sets the text of every element
//   whose data-live-tag names a changed tag (its classes stay; data-quality and data-ts are set),
//   and every event is re-dispatched on document.body as indunet:values, indunet:alarm or
//   indunet:state (detail = the event's data), so htmx can refresh a fragment with
//   hx-trigger="indunet:alarm from:body". After a reconnect, indunet:reconnected is dispatched.
//   An optional data-live-prefix="site/area" on <body> limits the stream to that part of the plant.
// - The theme button switches dark / light and remembers the choice.
(function () {
  "use strict";
  var QUALITY = ["good", "uncertain", "bad", "stale"];
  var live = { source: null, started: false, connected: false, lastAlarmId: "", retry: null,
    errors: 0 };
  window.indunetLive = live;

  function lost(on) {  // body.offline, not body.link-lost: `.link-lost` itself is display: none
    document.body.classList.toggle("offline", on);
  }

  document.addEventListener("htmx:error", function () { lost(true); });
  document.addEventListener("htmx:after:swap", function () {
    if (!live.started || live.connected) lost(false);  // else the stream's state decides
    if (!live.started) connect();  // a fragment may have brought the first live element
  });

  // Mirror of indunet.web.plant_tree.format_value: numbers rounded for reading.
  function format(value, type, el) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "string") return value;
    if (typeof value === "boolean") return value ? "on" : "off";
    if (type === "boolean" || el.dataset.liveType === "boolean") return value ? "on" : "off";
    if (el.dataset.kind === "epoch_ms") {
      var d = new Date(value);
      return isNaN(d.getTime()) ? String(value) : d.toLocaleTimeString();
    }
    if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
    var size = Math.abs(value);
    if (size >= 1e15 || size < 1e-3) return value.toPrecision(3).replace(/\.?0+(e|$)/, "$1");
    if (size >= 1000) return value.toFixed(1);
    return value.toFixed(3).replace(/0+$/, "").replace(/\.$/, "");
  }

  function applyValues(data) {
    var rows = data && data.values;
    if (!rows || !rows.length) return;
    var byTag = new Map();
    rows.forEach(function (r) { byTag.set(r.tag, r); });
    document.querySelectorAll("[data-live-tag]").forEach(function (el) {
      var r = byTag.get(el.getAttribute("data-live-tag"));
      if (!r) return;
      var text = format(r.value, r.type, el);
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("none", r.value === null);
      el.dataset.quality = QUALITY[r.quality] || String(r.quality);
      el.dataset.ts = String(r.ts);
    });
  }

  function fire(name, data) {
    document.body.dispatchEvent(new CustomEvent(name, { detail: data, bubbles: true }));
  }

  function parse(e) {
    try { return JSON.parse(e.data); } catch (err) { return null; }
  }

  function wanted() {
    return document.querySelector("[data-live-tag], [data-live]") !== null;
  }

  function connect() {
    if (live.source || !wanted() || typeof EventSource === "undefined") return;
    var url = "/api/v1/events?kinds=values,alarm,state";
    var prefix = document.body.dataset.livePrefix;
    if (prefix) url += "&prefix=" + encodeURIComponent(prefix);
    if (live.lastAlarmId) url += "&last_event_id=" + encodeURIComponent(live.lastAlarmId);
    var es = new EventSource(url);
    live.source = es;
    live.started = true;
    es.addEventListener("open", function () {
      var again = live.errors > 0;
      live.connected = true;
      lost(false);
      if (again) fire("indunet:reconnected", null);
    });
    es.addEventListener("error", function () {
      live.connected = false;
      live.errors += 1;
      lost(true);
      if (es.readyState === EventSource.CLOSED) {  // refused (e.g. signed out): try again later
        live.source = null;
        clearTimeout(live.retry);
        live.retry = setTimeout(connect, 5000);
      }
    });
    es.addEventListener("values", function (e) {
      var data = parse(e);
      applyValues(data);
      fire("indunet:values", data);
    });
    es.addEventListener("alarm", function (e) {
      if (e.lastEventId) live.lastAlarmId = e.lastEventId;
      fire("indunet:alarm", parse(e));
    });
    es.addEventListener("state", function (e) { fire("indunet:state", parse(e)); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
  window.addEventListener("pagehide", function () {
    if (live.source) live.source.close();
  });
  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) return;  // back from the page cache: the closed stream needs a new one
    live.source = null;
    connect();
  });

  document.addEventListener("click", function (e) {
    if (!e.target.closest(".theme-toggle")) return;
    var root = document.documentElement;
    var dark = root.dataset.theme ? root.dataset.theme === "dark"
      : window.matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = dark ? "light" : "dark";
    try { localStorage.setItem("indunet-theme", root.dataset.theme); } catch (err) { /* private mode */ }
  });
})();
