// Update runs. The run page: each live update of the run's Operation (live.js, on
// #operation) re-fetches the stages and clusters (#run-progress) with htmx; one fetch
// at a time, and one more if updates came in meanwhile. The new-run form: only the
// chosen change kind's parameters are shown.
(function () {
  "use strict";
  var busy = false;
  var again = false;

  function refresh() {
    var part = document.getElementById("run-progress");
    if (!part || !window.htmx) return;
    if (busy) { again = true; return; }
    busy = true;
    window.htmx.ajax("GET", part.dataset.refreshUrl, { target: "#run-progress", swap: "innerHTML" })
      .then(function () {
        busy = false;
        part.dataset.refreshed = String(Date.now());
        if (again) { again = false; refresh(); }
      }, function () { busy = false; });
  }

  document.addEventListener("keelson:update", function (event) {
    if (event.target && event.target.id === "operation") refresh();
  });

  function showKind(form) {
    var chosen = form.querySelector('input[name="change_kind"]:checked');
    form.querySelectorAll("fieldset.change-params").forEach(function (set) {
      set.hidden = !chosen || set.dataset.kind !== chosen.value;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("run-form");
    if (!form) return;
    showKind(form);
    form.addEventListener("change", function (event) {
      if (event.target.name === "change_kind") showKind(form);
    });
  });
})();
