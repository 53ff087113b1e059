// Timestamps in the viewer's time zone. The server writes the exact UTC time into
// <time datetime=... data-format="exact|relative"> (its title keeps it for hover); this
// rewrites the text: "2026-12-05 07:29:37 CET", or "5 minutes ago" kept current.
(function () {
  "use strict";

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function zoneName(date) {
    try {
      var parts = new Intl.DateTimeFormat("en-GB", { timeZoneName: "short" }).formatToParts(date);
      for (var i = 0; i < parts.length; i++) {
        if (parts[i].type === "timeZoneName") return parts[i].value;
      }
    } catch (e) { /* old browser: fall through */ }
    return "";
  }

  function exact(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) +
      " " + zoneName(date);
  }

  function relative(date, now) {
    var seconds = Math.round((now - date) / 1000);
    var future = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 45) return "just now";
    var units = [[86400, "day"], [3600, "hour"], [60, "minute"]];
    for (var i = 0; i < units.length; i++) {
      var size = units[i][0];
      if (seconds >= size) {
        var n = size === 60 ? Math.round(seconds / size) : Math.floor(seconds / size);
        var text = n + " " + units[i][1] + (n === 1 ? "" : "s");
        return future ? "in " + text : text + " ago";
      }
    }
    return "just now";
  }

  function localize(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time[datetime][data-format]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      el.textContent = el.dataset.format === "relative" ? relative(date, now) : exact(date);
    });
  }

  window.keelsonTime = { localize: localize, exact: exact, relative: relative };
  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  document.addEventListener("htmx:afterSwap", function (event) { localize(event.target); });
  document.addEventListener("keelson:update", function () { localize(document); });
  setInterval(function () { localize(document); }, 30000);
})();
