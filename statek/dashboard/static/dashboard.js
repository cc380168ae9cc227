// statek dashboard: follows the server-sent event stream and refreshes the page's live parts.
// Written for statek; no third-party code. Job-controlled text only ever reaches the page
// through textContent (never innerHTML); refreshed sections come from this server's own
// escaped HTML.
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const state = { events: 0, statuses: {}, refreshes: 0 };
  window.statekDashboard = state;

  function setLive(text, ok) {
    const live = document.getElementById("live");
    if (live) {
      live.textContent = text;
      live.className = ok ? "live ok" : "live";
    }
  }

  // Replace every [data-refresh][id] section with the same section of a fresh copy of the page.
  let refreshTimer = null;
  function refreshSoon(delay) {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(refresh, delay);
  }
  async function refresh() {
    try {
      const answer = await fetch(window.location.href, { credentials: "same-origin" });
      if (!answer.ok) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      document.querySelectorAll("[data-refresh][id]").forEach(function (old) {
        const replacement = fresh.getElementById(old.id);
        if (replacement) old.replaceChildren(...replacement.childNodes);
      });
      state.refreshes += 1;
    } catch (err) {
      // the next event or tick tries again
    } finally {
      refreshTimer = null;
    }
  }

  // The server's format (YYYY-MM-DD HH:MM:SS, local time).
  function stamp(date) {
    const two = function (n) { return String(n).padStart(2, "0"); };
    return date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate()) +
      " " + two(date.getHours()) + ":" + two(date.getMinutes()) + ":" + two(date.getSeconds());
  }

  function badge(element, status) {
    element.textContent = status;
    element.className = "badge status-" + status.toLowerCase();
  }

  function onStatus(data) {
    state.statuses[data.job] = data.status;
    if (page === "overview") {
      const list = document.getElementById("events");
      if (list) {
        const placeholder = list.querySelector(".muted");
        if (placeholder) placeholder.remove();
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = "/dashboard/jobs/" + encodeURIComponent(data.job);
        link.textContent = data.job;
        link.className = "mono";
        const tag = document.createElement("span");
        badge(tag, data.status);
        item.append(stamp(new Date()).slice(11) + " ", link, " → ", tag);
        list.prepend(item);
        while (list.children.length > 30) list.lastElementChild.remove();
      }
      refreshSoon(1500);
    } else if (page === "jobs") {
      document.querySelectorAll("tr[data-job]").forEach(function (row) {
        if (row.dataset.job === data.job) badge(row.querySelector("[data-status]"), data.status);
      });
    } else if (page === "job") {
      const holder = document.getElementById("job");
      if (!holder || holder.dataset.job !== data.job) return;
      const previous = holder.dataset.status;
      holder.dataset.status = data.status;
      badge(document.getElementById("job-status"), data.status);
      if (previous !== data.status) {
        const item = document.createElement("li");
        const moment = document.createElement("time");
        moment.textContent = stamp(new Date());
        item.append(moment, " now " + data.status);
        document.getElementById("timeline").append(item);
      }
      refreshSoon(300);
    }
  }

  function onConsole(data) {
    const pre = document.getElementById("console");
    if (!pre) return;
    let line = pre.querySelector('[data-line="' + Number(data.line) + '"]');
    if (!line) {
      line = document.createElement("span");
      line.dataset.line = String(Number(data.line));
      pre.append(line);
    }
    line.textContent = String(data.text).replace(/\n$/, "");
  }

  function follow(url) {
    if (!window.EventSource) return;
    const source = new EventSource(url);
    source.onopen = function () { setLive("● live", true); };
    source.onerror = function () { setLive("○ reconnecting", false); };
    source.addEventListener("status", function (event) {
      state.events += 1;
      onStatus(JSON.parse(event.data));
    });
    source.addEventListener("console", function (event) {
      state.events += 1;
      onConsole(JSON.parse(event.data));
    });
    source.addEventListener("gap", function () { refreshSoon(100); });
  }

  async function act(path, payload) {
    const out = document.getElementById("action-result");
    const answer = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Statek-Dashboard": "1" },
      body: JSON.stringify(payload),
    });
    let text = answer.status + "";
    try {
      const data = await answer.json();
      text = answer.ok ? JSON.stringify(data) : (data.error ? data.error.message : text);
    } catch (err) { /* keep the status code */ }
    if (out) out.textContent = (answer.ok ? "done: " : "failed: ") + text;
    refreshSoon(200);
  }

  function wireActions(job) {
    const form = document.getElementById("push-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        const input = document.getElementById("push-text");
        act("/v1/jobs/" + encodeURIComponent(job) + "/messages", { message: input.value });
        input.value = "";
      });
    }
    const cancel = document.getElementById("cancel-button");
    if (cancel) {
      cancel.addEventListener("click", function () {
        act("/v1/jobs/" + encodeURIComponent(job) + "/cancel", {});
      });
    }
  }

  if (page === "job") {
    const holder = document.getElementById("job");
    if (holder) {
      follow("/v1/jobs/" + encodeURIComponent(holder.dataset.job) + "/events");
      wireActions(holder.dataset.job);
    }
  } else if (page === "overview" || page === "jobs") {
    follow("/v1/events");
    if (page === "overview") setInterval(function () { refreshSoon(0); }, 5000);
  }
})();
