/* Andon phone page: raise, take and resolve calls of one line; write handover notes. */
(function () {
  "use strict";
  var root = document.getElementById("andon");
  if (!root || !root.dataset.line) return;
  var line = root.dataset.line;
  var ent = root.dataset.enterprise;
  function csrf() {
    var m = document.cookie.match(/(?:^|; )indunet_csrf=([^;]*)/);
    return root.dataset.csrf || (m ? decodeURIComponent(m[1]) : "");
  }
  function q(extra) {
    var p = new URLSearchParams(Object.assign({ scope: line, enterprise: ent }, extra || {}));
    return "?" + p.toString();
  }
  function say(text) { document.getElementById("msg").textContent = text; }
  function send(method, path, body) {
    return fetch(path, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: body ? JSON.stringify(body) : undefined,
    }).then(function (r) {
      return r.json().then(function (d) {
        if (!r.ok) throw new Error(d.detail || ("HTTP " + r.status));
        return d;
      });
    });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function render(calls) {
    var box = document.getElementById("calls");
    box.replaceChildren();
    if (!calls.length) box.appendChild(el("p", "", "No open calls."));
    calls.forEach(function (c) {
      var d = el("div", "call " + c.state);
      d.dataset.call = c.call_id;
      d.appendChild(el("strong", "", c.reason + " · " + (c.machine || c.line).split("/").slice(-1)[0]));
      d.appendChild(el("div", "", c.note || ""));
      d.appendChild(el("div", "", c.state + (c.taken_by ? " by " + c.taken_by : "") + " · raised by " + c.raised_by));
      if (c.state === "open") {
        var t = el("button", "take", "Take");
        t.type = "button";
        t.onclick = function () {
          send("POST", "/api/v1/andon/calls/" + c.call_id + "/take" + q()).then(load, function (e) { say(e.message); });
        };
        d.appendChild(t);
      }
      var cause = el("input", "cause");
      cause.placeholder = "cause";
      cause.maxLength = 1000;
      var r = el("button", "resolve", "Resolve");
      r.type = "button";
      r.onclick = function () {
        send("POST", "/api/v1/andon/calls/" + c.call_id + "/resolve" + q(), { cause: cause.value })
          .then(function () { say("Resolved."); load(); }, function (e) { say(e.message); });
      };
      d.appendChild(cause);
      d.appendChild(r);
      box.appendChild(d);
    });
  }
  function load() {
    fetch("/api/v1/andon/calls" + q({ state: "active" }), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (d) { render(d.calls || []); }, function () { say("Connection lost; retrying."); });
    fetch("/api/v1/andon/calls" + q({ hours: "24" }), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        var s = d.summary || {};
        function min(ms) { return ms === null || ms === undefined ? "–" : (ms / 60000).toFixed(1) + " min"; }
        document.getElementById("andon-figures").textContent =
          "Last 24 h: " + (s.calls || 0) + " calls · MTTA " + min(s.mtta_ms) + " · MTTR " + min(s.mttr_ms);
      }, function () {});
    fetch("/api/v1/handover" + q(), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        var box = document.getElementById("notes");
        box.replaceChildren();
        (d.notes || []).forEach(function (n) {
          box.appendChild(el("p", "", n.shift + " · " + n.author + ": " + n.text));
        });
      }, function () {});
  }
  document.querySelectorAll("button.raise").forEach(function (b) {
    b.onclick = function () {
      var target = document.getElementById("target").value;
      var note = document.getElementById("note").value;
      send("POST", "/api/v1/andon/calls" + q({ scope: target }), { reason: b.dataset.reason, note: note })
        .then(function () { say("Call raised: " + b.dataset.reason + "."); document.getElementById("note").value = ""; load(); },
              function (e) { say(e.message); });
    };
  });
  document.getElementById("save-note").onclick = function () {
    var t = document.getElementById("handover");
    send("POST", "/api/v1/handover" + q(), { text: t.value })
      .then(function () { t.value = ""; say("Note saved."); load(); }, function (e) { say(e.message); });
  };
  load();
  setInterval(load, 3000);
})();
