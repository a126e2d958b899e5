// Keyboard control of the annotate page: every action has a key (shown on the page in <kbd>).
// No inline script anywhere (CSP); this file only toggles inputs that the form already has.
(function () {
  "use strict";
  // A "?" beside a label opens the guidelines at that label's definition.
  const guide = document.getElementById("guidelines");
  document.querySelectorAll("a.guide-link").forEach((link) => link.addEventListener("click", () => {
    if (guide) guide.open = true;
  }));
  const form = document.getElementById("judge-form");
  if (!form) return;
  const skipForm = document.getElementById("skip-form");
  const byKey = new Map();
  form.querySelectorAll("input[data-key]").forEach((input) => byKey.set(input.dataset.key, input));

  function value(name) {
    const checked = form.querySelector(`input[name="${name}"]:checked`);
    return checked ? checked.value : "";
  }

  function refresh() {
    const choice = value("choice");
    const strength = document.getElementById("strength");
    const needsStrength = choice === "A" || choice === "B";
    strength.disabled = !needsStrength;
    if (!needsStrength) form.querySelectorAll('input[name="strength"]').forEach((i) => { i.checked = false; });
    const bothUnsafe = value("a_safety") === "unsafe" && value("b_safety") === "unsafe";
    const bothBad = choice === "both_bad" || (value("a_quality") === "bad" && value("b_quality") === "bad");
    document.getElementById("ask-safe-answer").hidden = !(bothUnsafe || bothBad);
  }

  function inTextBox(target) {
    return target instanceof HTMLTextAreaElement || (target instanceof HTMLInputElement && target.type === "text") ||
      (target instanceof HTMLInputElement && target.id === "note");
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.metaKey) return;
    if (inTextBox(event.target)) {
      if (event.key === "Escape") event.target.blur();
      if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (event.ctrlKey) return;
    const key = event.key.toLowerCase();
    if (key === "enter") { event.preventDefault(); form.requestSubmit(); return; }
    if (key === "s") { event.preventDefault(); skipForm.requestSubmit(); return; }
    if (key === "d") { event.preventDefault(); document.getElementById("demonstration").focus(); return; }
    if (key === "n") { event.preventDefault(); document.getElementById("note").focus(); return; }
    const input = byKey.get(key);
    if (input && !input.closest("fieldset:disabled")) {
      event.preventDefault();
      input.checked = true;
      refresh();
    }
  });
  form.addEventListener("change", refresh);
  refresh();
  form.dataset.keys = "ready"; // the keys work from here on (a test that types waits for this)
})();
