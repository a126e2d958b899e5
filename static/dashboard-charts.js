// Dashboard charts, drawn by Chart.js (served from /static/vendor, installed from npm at setup).
// Pages carry their data in data-* attributes; no inline script (the CSP forbids it).
"use strict";

(function () {
  const PALETTE = ["#2f5bea", "#c4320a", "#067647", "#7a5af8", "#dc6803", "#0e9384", "#e31b54", "#475467"];

  function available() {
    return typeof window.Chart === "function";
  }

  function missing(canvas) {
    const note = document.createElement("p");
    note.className = "error";
    note.textContent = "The charting library is not installed: run `make install` (it installs Chart.js from npm).";
    canvas.replaceWith(note);
  }

  // A line chart of numeric (x, y) points, one dataset per series name, x = training step.
  function lineChart(canvas, title) {
    if (!available()) { missing(canvas); return null; }
    return new window.Chart(canvas, {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: false },
        plugins: { title: { display: true, text: title }, legend: { position: "bottom" } },
        scales: { x: { type: "linear", title: { display: true, text: "step" } }, y: { type: "linear" } },
        elements: { point: { radius: 0 } },
      },
    });
  }

  // Replace the chart's series with {name: [{x, y}, ...]}, keeping each series' colour.
  function setSeries(chart, series) {
    const names = Object.keys(series).sort();
    chart.data.datasets = names.map(function (name, i) {
      const colour = PALETTE[i % PALETTE.length];
      // A series of a few points (a validation score at the end) is drawn as dots, or it would not show.
      const radius = series[name].length < 5 ? 4 : 0;
      return { label: name, data: series[name], borderColor: colour, backgroundColor: colour, borderWidth: 2, pointRadius: radius };
    });
    chart.update("none");
    const points = names.reduce(function (n, name) { return n + series[name].length; }, 0);
    chart.canvas.dataset.points = String(points);
  }

  // The overview's bar chart: data-series holds [[label, value], ...].
  function barFromAttributes(canvas) {
    if (!available()) { missing(canvas); return; }
    const series = JSON.parse(canvas.dataset.series || "[]");
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: series.map(function (p) { return p[0]; }),
        datasets: [{ label: canvas.dataset.label || "", data: series.map(function (p) { return p[1]; }), backgroundColor: PALETTE[0] }],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
    canvas.dataset.points = String(series.length);
  }

  window.RLHFCharts = { lineChart: lineChart, setSeries: setSeries, available: available };

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart=bar]").forEach(barFromAttributes);
  });
})();
