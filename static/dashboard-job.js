// One job's page: polls the job, its metric curves and its log until it has finished.
"use strict";

(function () {
  const POLL_MS = 1000;
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const FAMILIES = [["loss", /loss/], ["accuracy", /acc/], ["kl", /(^|_)kl($|_)/], ["entropy", /entropy/],
    ["length", /length|(^|_)len($|_)/], ["reward", /reward|score/], ["margin", /margin/]];

  // Curves that belong on one plot: train_loss and val_loss on "loss", and so on.
  function family(name) {
    for (let i = 0; i < FAMILIES.length; i++) {
      if (FAMILIES[i][1].test(name)) { return FAMILIES[i][0]; }
    }
    return name;
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); });
  }

  function Page(root) {
    this.id = root.dataset.job;
    this.charts = {};
    this.container = document.getElementById("charts");
    JSON.parse(root.dataset.groups || "[]").forEach(this.chart, this);
  }

  Page.prototype.chart = function (name) {
    if (!this.charts[name]) {
      const box = document.createElement("div");
      box.className = "chart-box";
      const canvas = document.createElement("canvas");
      canvas.id = "chart-" + name;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", name + " curve");
      box.appendChild(canvas);
      this.container.appendChild(box);
      this.charts[name] = window.RLHFCharts.lineChart(canvas, name);
    }
    return this.charts[name];
  };

  Page.prototype.showJob = function (job) {
    const status = document.getElementById("job-status");
    status.textContent = job.status;
    status.className = "status status-" + job.status;
    document.getElementById("job-progress").value = job.progress;
    document.getElementById("job-percent").textContent = Math.round(job.progress * 100) + "%";
    document.getElementById("job-message").textContent = job.progress_message || "";
    document.getElementById("job-attempts").textContent = job.attempts + " of " + job.max_attempts;
    const error = document.getElementById("job-error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
    if (job.result) { document.getElementById("job-result").textContent = JSON.stringify(job.result, null, 2); }
    if (FINISHED.indexOf(job.status) >= 0) {
      const cancel = document.getElementById("cancel-form");
      if (cancel) { cancel.remove(); }
    }
  };

  Page.prototype.showMetrics = function (points) {
    const byFamily = {};
    points.forEach(function (p) {
      const f = family(p.name);
      byFamily[f] = byFamily[f] || {};
      (byFamily[f][p.name] = byFamily[f][p.name] || []).push({ x: p.step, y: p.value });
    });
    const families = Object.keys(byFamily);
    families.forEach(function (f) {
      const chart = this.chart(f);
      if (chart) { window.RLHFCharts.setSeries(chart, byFamily[f]); }
    }, this);
    document.getElementById("no-curves").hidden = families.length > 0;
  };

  Page.prototype.poll = function () {
    const self = this;
    const base = "/api/v1/jobs/" + this.id;
    // The curves and the log are asked for after the status, never beside it: a job that finishes between
    // the answers would otherwise end the polling with curves read before its last points were written.
    getJSON(base)
      .then(function (job) { return Promise.all([job, getJSON(base + "/metrics"), getJSON(base + "/log")]); })
      .then(function (answers) {
        self.showJob(answers[0]);
        self.showMetrics(answers[1]);
        document.getElementById("job-log").textContent = answers[2].log;
        if (FINISHED.indexOf(answers[0].status) < 0) { window.setTimeout(self.poll.bind(self), POLL_MS); }
      })
      .catch(function () { window.setTimeout(self.poll.bind(self), POLL_MS * 5); });
  };

  document.addEventListener("DOMContentLoaded", function () {
    const root = document.getElementById("job");
    if (!root || !window.RLHFCharts) { return; }
    const page = new Page(root);
    window.RLHFJobPage = page;
    page.poll();
  });
})();
