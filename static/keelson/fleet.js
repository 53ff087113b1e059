// Fleet overview: counts update from the websocket; the panels are re-fetched (htmx) on
// each coalesced message; the cost and compliance trends are small uPlot lines.
(function () {
  "use strict";
  function drawTrend() {
    drawSparkline("cost-trend", "#1f6feb");
    drawSparkline("compliance-trend", "#2da44e");
  }
  function drawSparkline(id, colour) {
    var el = document.getElementById(id);
    var source = document.getElementById(id + "-data");
    if (!el || !source || typeof uPlot === "undefined") return;
    var rows = JSON.parse(source.textContent);
    el.innerHTML = "";
    if (rows.length < 2) return;
    var data = [rows.map(function (r) { return Date.parse(r.day + "T00:00:00Z") / 1000; }),
                rows.map(function (r) { return r.total; })];
    new uPlot({ width: Math.max(200, el.clientWidth), height: 80, legend: { show: false },
                axes: [{ show: false }, { show: false }], cursor: { show: false },
                series: [{}, { stroke: colour, width: 2 }] }, data, el);
  }
  document.addEventListener("DOMContentLoaded", drawTrend);
  document.addEventListener("htmx:afterSwap", drawTrend);
  document.addEventListener("keelson:update", function (event) {
    var root = event.target;
    if (!root || root.id !== "fleet") return;
    var counts = (event.detail.data || {}).counts || {};
    // Live counts are by probe status; while some clusters are shown as Provisioning or
    // Pending (not yet judged) those counts would disagree: the panel refresh redraws them.
    if (root.querySelector("[data-count-shown]")) counts = {};
    Object.keys(counts).forEach(function (status) {
      var el = root.querySelector('[data-count="' + status + '"]');
      if (el) el.textContent = counts[status];
    });
    if (event.detail.type === "fleet") refreshPanels(root);
  });
  // The counts above are live; the panels (scores, events, costs) cost the server a page
  // render, so with a busy fleet they are re-fetched at most once per REFRESH_MS: the first
  // change at once, later ones in one trailing refresh.
  var REFRESH_MS = 10000;
  var lastRefresh = 0;
  var trailing = null;
  function refreshPanels(root) {
    if (!window.htmx || trailing) return;
    var wait = lastRefresh + REFRESH_MS - Date.now();
    if (wait > 0) {
      trailing = setTimeout(function () { trailing = null; refreshPanels(root); }, wait);
      return;
    }
    lastRefresh = Date.now();
    window.htmx.ajax("GET", root.dataset.refreshUrl, { target: "#fleet-body", swap: "innerHTML" })
      .then(function () { root.dataset.refreshed = String(Date.now()); });
  }
})();
