// Live views: subscribe to a websocket, apply coalesced snapshots, resync on a gap in
// the sequence numbers, reconnect with backoff and say so while the socket is down.
(function () {
  "use strict";

  function banner(text) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.textContent = text || "";
    el.hidden = !text;
  }

  // A <time> the time.js localizer understands; the exact UTC time stays on hover.
  function timeElement(iso, format) {
    var el = document.createElement("time");
    el.setAttribute("datetime", iso);
    el.dataset.format = format || "exact";
    el.title = iso.replace("T", " ").replace(/\.\d+/, "").replace(/(Z|\+00:00)$/, " UTC");
    el.textContent = el.title;
    return el;
  }

  function setTime(root, field, iso) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (!el || !iso) return;
    el.replaceChildren(timeElement(iso));
  }

  // "Updated just now" on every live page, kept current by time.js.
  function markUpdated(root) {
    var el = root.querySelector("[data-live-updated]") || document.querySelector("[data-live-updated]");
    if (!el) return;
    el.replaceChildren(document.createTextNode("Updated "),
                       timeElement(new Date().toISOString(), "relative"));
  }

  function renderOperation(root, op) {
    var set = function (field, value) {
      var el = root.querySelector('[data-field="' + field + '"]');
      if (el) el.textContent = value;
      return el;
    };
    var state = set("state", op.state);
    if (state) state.className = "state state-" + op.state;
    set("message", op.message);
    set("progress", op.progress);
    var bar = root.querySelector("progress");
    if (bar) bar.value = op.progress;
    var err = set("error", op.error);
    if (err) err.hidden = !op.error;
    var log = root.querySelector('[data-field="log"]');
    if (log) {
      var seen = {};
      log.querySelectorAll("li").forEach(function (li) { seen[li.dataset.id] = true; });
      op.log.forEach(function (line) {
        if (seen[line.id]) return;
        var li = document.createElement("li");
        li.className = "log-" + line.level;
        li.dataset.id = line.id;
        li.textContent = line.text;
        log.appendChild(li);
      });
    }
    setTime(root, "started_at", op.started_at);
    setTime(root, "finished_at", op.finished_at);
    root.dataset.state = op.state;
    if (["succeeded", "failed", "canceled"].indexOf(op.state) >= 0) {
      document.querySelectorAll(".cancel-operation").forEach(function (f) { f.hidden = true; });
    }
  }

  function renderCluster(root, cluster) {
    ["status_message", "kubernetes_version", "nodes_ready", "node_count"].forEach(function (f) {
      var el = root.querySelector('[data-field="' + f + '"]');
      if (el) el.textContent = cluster[f];
    });
    var status = root.querySelector('[data-field="status"]');
    // Provisioning / Pending (not judged yet) stay until the first good probe, or a reload.
    var notJudged = status && (status.dataset.shown === "provisioning" ||
                               (status.dataset.shown === "pending" && !cluster.last_seen_at));
    root.querySelectorAll("[data-stale]").forEach(function (el) {
      el.hidden = cluster.status !== "unreachable";
    });
    if (status && !notJudged) {
      status.dataset.shown = cluster.status;
      status.textContent = cluster.status.charAt(0).toUpperCase() + cluster.status.slice(1);
      status.className = "status status-" + cluster.status;
    }
    var seen = root.querySelector('[data-field="last_seen_at"]');
    if (seen && cluster.last_seen_at) seen.replaceChildren(timeElement(cluster.last_seen_at, "relative"));
    root.dataset.status = cluster.status;
  }

  var renderers = { operation: renderOperation, cluster: renderCluster };

  function subscribe(root) {
    var path = root.dataset.liveUrl;
    var kind = root.id;
    var lastSeq = 0;
    var attempt = 0;
    var closedForGood = false;

    function connect() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + location.host + path);
      socket.onopen = function () { attempt = 0; lastSeq = 0; banner(""); };
      socket.onmessage = function (event) {
        var msg = JSON.parse(event.data);
        if (msg.seq !== lastSeq + 1) {
          // A message went missing: ask for the whole picture again.
          socket.send(JSON.stringify({ type: "resync" }));
        }
        lastSeq = msg.seq;
        var render = renderers[kind];
        if (render) render(root, msg.data);
        markUpdated(root);
        root.dispatchEvent(new CustomEvent("keelson:update", { detail: msg, bubbles: true }));
      };
      socket.onclose = function (event) {
        if (event.code === 4401 || event.code === 4404) {
          closedForGood = true;
          banner("Live updates are not available for this page.");
          return;
        }
        if (closedForGood) return;
        attempt += 1;
        var delay = Math.min(30000, 500 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
        banner("Connection lost — reconnecting…");
        setTimeout(connect, delay);
      };
    }
    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      var order = ["auto", "light", "dark"];
      var label = function () {
        toggle.setAttribute("aria-label", "Theme: " + document.documentElement.dataset.theme);
      };
      label();
      toggle.addEventListener("click", function () {
        var next = order[(order.indexOf(document.documentElement.dataset.theme) + 1) % 3];
        document.documentElement.dataset.theme = next;
        localStorage.setItem("keelson-theme", next);
        label();
      });
    }
    document.querySelectorAll("[data-live-url]").forEach(subscribe);
  });
})();
