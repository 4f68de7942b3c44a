// Show a banner while live updates fail (server gone, network down); hide it on the next success.
(function () {
  "use strict";
  document.addEventListener("htmx:error", function () {
    document.body.classList.add("link-lost");
  });
  document.addEventListener("htmx:after:swap", function () {
    document.body.classList.remove("link-lost");
  });
})();
