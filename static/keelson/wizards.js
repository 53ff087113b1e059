// The register and create forms show only the fields of the chosen method/provider
// (a static file: the Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  function register(form) {
    function show() {
      var chosen = form.querySelector('input[name="method"]:checked');
      var value = chosen ? chosen.value : "kubeconfig";
      form.querySelectorAll(".method").forEach(function (el) {
        el.hidden = el.dataset.method.split(" ").indexOf(value) < 0;
      });
    }
    form.addEventListener("change", show);
    show();
  }
  function create(form) {
    function show() {
      var chosen = form.querySelector('input[name="provider"]:checked');
      var provider = chosen ? chosen.value : "local";
      form.querySelectorAll(".provider").forEach(function (el) { el.hidden = el.dataset.provider !== provider; });
      var infra = form.querySelector('select[name="infrastructure"]');
      form.querySelectorAll(".infra").forEach(function (el) { el.hidden = !infra || el.dataset.infra !== infra.value; });
    }
    form.addEventListener("change", show);
    show();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("register-form");
    if (form) register(form);
    form = document.getElementById("create-form");
    if (form) create(form);
  });
})();
