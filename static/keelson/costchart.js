// Daily cost of the biggest groups (vendored uPlot), from data embedded in the page.
(function () {
  "use strict";
  var DAY = 86400;

  // The time axis covers the data: from the first day's start to the last day's end (one
  // day of data is one day wide; uPlot's own guess for a single point spans years).
  function dayRange(days) {
    var first = Date.parse(days[0] + "T00:00:00Z") / 1000;
    var last = Date.parse(days[days.length - 1] + "T00:00:00Z") / 1000;
    return [first, last + DAY];
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("cost-chart");
    var source = document.getElementById("cost-chart-data");
    if (!el || !source || typeof uPlot === "undefined") return;
    var chart = JSON.parse(source.textContent);
    var names = Object.keys(chart.series);
    el.dataset.series = names.length;
    if (!chart.days.length) { el.hidden = true; return; }
    var palette = ["#1f6feb", "#1a7f37", "#9a6700", "#cf222e", "#8250df", "#0a7b83", "#6e7781"];
    // Each day's bar sits in the middle of its day.
    var data = [chart.days.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000 + DAY / 2; })];
    var series = [{}];
    names.forEach(function (name, i) {
      data.push(chart.series[name]);
      series.push({ label: name, stroke: palette[i % palette.length], width: 2,
                    points: { show: chart.days.length < 3 } });
    });
    var range = dayRange(chart.days);
    var currency = chart.currency || "";
    el.uplot = new uPlot({
      width: Math.max(280, el.clientWidth), height: 260, series: series,
      scales: { x: { time: true, range: function () { return range; } } },
      axes: [{}, { label: currency + " / day", size: 70 }],
    }, data, el);
  });
})();
