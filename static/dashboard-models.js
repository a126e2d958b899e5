// The models page: fills in each reward model's agreement with later human judgements.
// Computing it runs the model, so it is fetched one version at a time after the page has shown.
"use strict";

(function () {
  function show(cell, answer) {
    if (answer.rate === null) {
      cell.textContent = "no later judgements";
      cell.className = "muted";
    } else {
      cell.textContent = (answer.rate * 100).toFixed(1) + "% of " + answer.judgements;
    }
  }

  function next(cells) {
    const cell = cells.shift();
    if (!cell) { return; }
    fetch(cell.dataset.agreement, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : r.json().then(function (p) { return Promise.reject(p.detail); }); })
      .then(function (answer) { show(cell, answer); })
      .catch(function (detail) {
        cell.textContent = "unavailable";
        cell.title = typeof detail === "string" ? detail : "";
        cell.className = "muted";
      })
      .then(function () { next(cells); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    next(Array.prototype.slice.call(document.querySelectorAll("td[data-agreement]")));
  });
})();
