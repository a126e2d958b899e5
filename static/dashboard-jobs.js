// The jobs list: polls /api/v1/jobs and moves each row's progress bar, status and message.
"use strict";

(function () {
  const POLL_MS = 1500;
  const FINISHED = ["succeeded", "failed", "cancelled"];

  function update(row, job) {
    const bar = row.querySelector("[data-field=progress]");
    const status = row.querySelector("[data-field=status]");
    bar.value = job.progress;
    row.querySelector("[data-field=percent]").textContent = Math.round(job.progress * 100) + "%";
    row.querySelector("[data-field=message]").textContent = job.progress_message || "";
    status.textContent = job.status;
    status.className = "status status-" + job.status;
  }

  function start(table) {
    const url = table.dataset.poll;
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (page) {
          let running = false;
          page.items.forEach(function (job) {
            const row = table.querySelector('tr[data-job="' + job.id + '"]');
            if (row) { update(row, job); }
            if (FINISHED.indexOf(job.status) < 0) { running = true; }
          });
          window.setTimeout(poll, running ? POLL_MS : POLL_MS * 4);
        })
        .catch(function () { window.setTimeout(poll, POLL_MS * 4); });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    const table = document.getElementById("jobs");
    if (table && table.dataset.poll) { start(table); }
  });
})();
