// The chosen theme, applied before the page paints (a static file: no inline script).
document.documentElement.dataset.theme = localStorage.getItem("keelson-theme") || "auto";
