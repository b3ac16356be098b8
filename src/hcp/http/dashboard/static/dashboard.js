// HCP dashboard live updates: every element with data-live="URL" is re-rendered from that URL
// (an HTML fragment the server renders with the same template) every few seconds. Polling stops
// while the tab is hidden; an ended session reloads the page, which then asks to log in again.
(function () {
  "use strict";

  var PERIOD_MS = 5000;
  var timer = null;

  function setStatus(ok) {
    var now = new Date().toISOString().slice(11, 19);
    var text = ok
      ? "Live · refreshed " + now + " UTC"
      : "Connection lost · retrying every " + PERIOD_MS / 1000 + " s";
    document.querySelectorAll("[data-live-status]").forEach(function (el) {
      el.textContent = text;
      el.classList.toggle("stale", !ok);
    });
  }

  function refresh(el) {
    return fetch(el.getAttribute("data-live"), {
      credentials: "same-origin",
      headers: { "X-HCP-Live": "1" },
      cache: "no-store",
    }).then(function (response) {
      if (response.status === 401) {
        window.location.reload();
        return false;
      }
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.text().then(function (html) {
        el.innerHTML = html;
        el.setAttribute("data-refreshed", String(Date.now()));
        return true;
      });
    });
  }

  function tick() {
    var targets = document.querySelectorAll("[data-live]");
    if (targets.length === 0 || document.hidden) {
      return;
    }
    Promise.all(Array.prototype.map.call(targets, refresh)).then(
      function () { setStatus(true); },
      function () { setStatus(false); }
    );
  }

  function start() {
    if (timer === null && document.querySelector("[data-live]")) {
      timer = window.setInterval(tick, PERIOD_MS);
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      tick();
    }
  });
  document.addEventListener("DOMContentLoaded", start);
})();
