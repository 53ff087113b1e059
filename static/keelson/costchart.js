// Daily cost of the biggest groups (vendored uPlot), from data embedded in the page.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("cost-chart");
    var source = document.getElementById("cost-chart-data");
    if (!el || !source || typeof uPlot === "undefined") return;
    var chart = JSON.parse(source.textContent);
    var names = Object.keys(chart.series);
    el.dataset.series = names.length;
    if (!chart.days.length) { el.hidden = true; return; }
    var palette = ["#1f6feb", "#1a7f37", "#9a6700", "#cf222e", "#8250df", "#0a7b83", "#6e7781"];
    var data = [chart.days.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; })];
    var series = [{}];
    names.forEach(function (name, i) {
      data.push(chart.series[name]);
      series.push({ label: name, stroke: palette[i % palette.length], width: 2 });
    });
    new uPlot({ width: Math.max(320, el.clientWidth), height: 260, series: series,
                axes: [{}, { label: "cost / day" }] }, data, el);
  });
})();
