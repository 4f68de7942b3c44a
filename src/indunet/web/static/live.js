// Show a banner while live updates fail (server gone, network down); hide it on the next success.
// The theme button switches dark / light and remembers the choice.
(function () {
  "use strict";
  document.addEventListener("htmx:error", function () {
    document.body.classList.add("link-lost");
  });
  document.addEventListener("htmx:after:swap", function () {
    document.body.classList.remove("link-lost");
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
