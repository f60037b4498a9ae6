// Polls the public health answer (ok / degraded / down) every 15 seconds.
"use strict";
(function () {
  var LABELS = { ok: "Up and healthy", degraded: "Up, but degraded", down: "Down" };
  function show(state) {
    var el = document.getElementById("state");
    var known = Object.prototype.hasOwnProperty.call(LABELS, state);
    el.className = known ? state : "unknown";
    el.textContent = known ? LABELS[state] : "Unknown";
    document.getElementById("checked").textContent =
      "Last checked " + new Date().toLocaleTimeString();
  }
  function check() {
    fetch("/healthz", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (body) { show(String(body && body.status)); })
      .catch(function () { show("down"); });
  }
  check();
  setInterval(check, 15000);
})();
