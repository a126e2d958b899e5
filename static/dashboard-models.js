// The models page: each reward model's agreement with later human judgements.
// The figure is scored by a job and stored; this reads it, asks for a new scoring when judgements have
// come since (once per page view), and polls while the job runs. The web process never runs a model.
"use strict";

(function () {
  const POLL_MS = 2000;
  const MAX_POLLS = 300; // ten minutes: a stuck queue should not keep the tab busy for ever

  function csrfToken() {
    const field = document.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function percent(rate) {
    return (rate * 100).toFixed(1) + "%";
  }

  function show(cell, answer, requested) {
    let text;
    let muted = false;
    if (answer.rate !== null && answer.rate !== undefined) {
      text = percent(answer.rate) + " of " + answer.judgements;
      if (answer.stale) {
        text += answer.job_id ? " (scoring " + answer.later_judgements + "…)" : " (" + answer.later_judgements + " since)";
      }
    } else if (answer.judgements === 0 && !answer.stale) {
      text = "no later judgements";
      muted = true;
    } else if (answer.job_id) {
      text = "scoring " + answer.later_judgements + " judgements…";
      muted = true;
    } else {
      text = requested ? "not scored (see the jobs page)" : "not scored yet";
      muted = true;
    }
    cell.textContent = text;
    cell.className = muted ? "muted" : "";
    cell.title = answer.scored_at ? "scored " + answer.scored_at : "";
  }

  function call(url, method) {
    const headers = { Accept: "application/json" };
    if (method === "POST") { headers["X-CSRF-Token"] = csrfToken(); }
    return fetch(url, { method: method, credentials: "same-origin", headers: headers }).then(function (r) {
      return r.ok ? r.json() : r.json().then(function (p) { return Promise.reject(p.detail); });
    });
  }

  function follow(cell, state) {
    call(cell.dataset.agreement, "GET")
      .then(function (answer) {
        show(cell, answer, state.requested);
        if (answer.stale && !answer.job_id && !state.requested) {
          state.requested = true;
          return call(cell.dataset.agreement, "POST").then(function (queued) {
            show(cell, queued, true);
            return queued;
          });
        }
        return answer;
      })
      .then(function (answer) {
        state.polls += 1;
        if (answer.job_id && state.polls < MAX_POLLS) {
          window.setTimeout(function () { follow(cell, state); }, POLL_MS);
        }
      })
      .catch(function (detail) {
        cell.textContent = "unavailable";
        cell.title = typeof detail === "string" ? detail : "";
        cell.className = "muted";
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("td[data-agreement]").forEach(function (cell) {
      follow(cell, { requested: false, polls: 0 });
    });
  });
})();
