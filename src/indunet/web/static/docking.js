// Docking page: run an allocation and turn a run into dispatch orders through the JSON API
// (POST /api/v1/dock/runs, POST /api/v1/dock/runs/{id}/dispatch) with the session's CSRF token,
// then show the run's result fragment (/parts/docking/run/{id}) without reloading the page.
(function () {
  "use strict";
  var form = document.querySelector(".dock-run-form");
  var box = document.getElementById("dock-result");
  if (!form || !box) return;
  var csrf = form.dataset.csrf || "";
  var user = form.dataset.user || "operator";
  var status = form.querySelector(".dock-run-status");

  function problem(r) {
    return r.json().then(function (body) {
      var d = body && body.detail;
      throw new Error(typeof d === "string" ? d : (r.status + " " + r.statusText));
    }, function () { throw new Error(r.status + " " + r.statusText); });
  }

  function post(url) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" }
    }).then(function (r) { return r.ok ? r.json() : problem(r); });
  }

  function showRun(runId) {
    return fetch("/parts/docking/run/" + encodeURIComponent(runId), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status + " " + r.statusText); return r.text(); })
      .then(function (html) {
        box.innerHTML = html;
        var url = new URL(window.location.href);
        url.searchParams.set("run", runId);
        window.history.replaceState(null, "", url.toString());
      });
  }

  function busy(on, text) {
    form.querySelectorAll("button").forEach(function (b) { b.disabled = on; });
    status.textContent = text || "";
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var button = e.submitter || form.querySelector("button[data-objective]");
    var objective = button.dataset.objective || "fair";
    busy(true, "solving…");
    post("/api/v1/dock/runs?objective=" + encodeURIComponent(objective))
      .then(function (run) { return showRun(run.run_id).then(function () { return run; }); })
      .then(function (run) {
        busy(false, "done: lowest fill rate " + Math.round((run.min_fill_rate || 0) * 100) + " %");
      })
      .catch(function (err) { busy(false, "could not run: " + err.message); });
  });

  document.addEventListener("click", function (e) {
    var button = e.target.closest(".dock-one");
    if (!button) return;
    var note = document.querySelector(".dock-one-status");
    button.disabled = true;
    var q = new URLSearchParams({ request: button.dataset.request, offer: button.dataset.offer, by: user });
    post("/api/v1/dock/dispatch?" + q.toString())
      .then(function (order) {
        if (note) note.textContent = "proposed order " + order.order_id + ": " + order.quantity +
          " from " + order.offer + "; reload to see it under Docked by hand";
      })
      .catch(function (err) {
        button.disabled = false;
        if (note) note.textContent = "could not dock: " + err.message;
      });
  });

  box.addEventListener("click", function (e) {
    var button = e.target.closest(".dock-dispatch");
    if (!button) return;
    var note = box.querySelector(".dock-dispatch-status");
    button.disabled = true;
    var runId = button.dataset.run;
    post("/api/v1/dock/runs/" + encodeURIComponent(runId) + "/dispatch?by=" + encodeURIComponent(user))
      .then(function () { return showRun(runId); })
      .catch(function (err) {
        button.disabled = false;
        if (note) note.textContent = "could not dispatch: " + err.message;
      });
  });
})();
