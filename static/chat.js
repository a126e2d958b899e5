// Chat mode: Ctrl+Enter sends; while the policy writes its two replies, show that it is working.
(function () {
  "use strict";
  const form = document.getElementById("chat-form");
  if (!form) return;
  const message = document.getElementById("message");
  form.addEventListener("submit", () => {
    document.getElementById("send").disabled = true;
    document.getElementById("writing").hidden = false;
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); form.requestSubmit(); }
  });
})();
