// Long actions say they are working. A form marked data-busy shows a spinner in its
// submit button and disables it once submitted (no double submits); htmx requests show
// their hx-indicator (the .htmx-request class, styled in app.css).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-busy")) return;
    if (event.defaultPrevented) return;
    var button = event.submitter || form.querySelector("button[type=submit], button:not([type])");
    if (!button) return;
    form.setAttribute("aria-busy", "true");
    form.classList.add("htmx-request");
    if (!button.querySelector(".busy-indicator")) {
      var spinner = document.createElement("span");
      spinner.className = "busy-indicator";
      spinner.setAttribute("aria-hidden", "true");
      button.appendChild(spinner);
    }
    // Disabled after the submission has started, so the button's name/value still go.
    setTimeout(function () { button.disabled = true; }, 0);
  });
})();
