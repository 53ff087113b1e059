// Health charts: fetch a cluster's series from the API and draw it with the vendored uPlot.
(function () {
  "use strict";
  var RANGES = { "6h": 6 * 3600e3, "2d": 48 * 3600e3, "30d": 30 * 24 * 3600e3 };

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  function draw(el, range) {
    var until = new Date();
    var since = new Date(until.getTime() - RANGES[range]);
    var url = el.dataset.url + "?since=" + encodeURIComponent(since.toISOString()) +
      "&until=" + encodeURIComponent(until.toISOString());
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (series) {
        var points = series.points || [];
        var empty = el.parentNode.querySelector(".chart-empty");
        if (empty) empty.hidden = points.length > 0;
        el.innerHTML = "";
        el.dataset.points = points.length;
        if (!points.length || typeof uPlot === "undefined") return;
        var data = [
          points.map(function (p) { return Date.parse(p.t) / 1000; }),
          points.map(function (p) { return p.api_latency_ms; }),
          points.map(function (p) { return p.nodes_ready; }),
          points.map(function (p) { return p.pods_running; }),
        ];
        var opts = {
          width: Math.max(320, el.clientWidth),
          height: 240,
          scales: {
            x: { time: true, range: [since.getTime() / 1000, until.getTime() / 1000] },
          },
          series: [
            {},
            { label: "API latency (ms)", stroke: css("--accent"), scale: "ms" },
            { label: "Nodes ready", stroke: css("--ok"), scale: "n" },
            { label: "Pods running", stroke: css("--warn"), scale: "n" },
          ],
          axes: [
            { stroke: css("--muted") },
            { scale: "ms", stroke: css("--muted"), label: "ms" },
            { scale: "n", side: 1, stroke: css("--muted"), grid: { show: false } },
          ],
        };
        new uPlot(opts, data, el);
      })
      .catch(function () { el.textContent = "Could not load the health history."; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("health-chart");
    if (!el) return;
    var buttons = document.querySelectorAll("[data-chart-range]");
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
        draw(el, button.dataset.chartRange);
      });
    });
    draw(el, "6h");
  });
})();
