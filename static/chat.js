// Chat mode: Ctrl+Enter sends; the two replies show as the policy writes them (server-sent events from
// /chat/stream), then the turn's judging page opens. Without fetch streams the form posts as before.
(function () {
  "use strict";
  const form = document.getElementById("chat-form");
  if (!form) return;
  const message = document.getElementById("message");
  const send = document.getElementById("send");
  const writing = document.getElementById("writing");
  const live = document.getElementById("live-replies");
  const failure = document.getElementById("stream-error");

  function busy(on) {
    send.disabled = on;
    writing.hidden = !on;
  }

  function fail(text) {
    busy(false);
    failure.textContent = text; // textContent: model and server text is never parsed as HTML
    failure.hidden = false;
  }

  // One server-sent event block ("event: x\ndata: {...}") → [name, data].
  function parse(block) {
    let name = "message";
    const data = [];
    block.split("\n").forEach(function (line) {
      if (line.startsWith("event: ")) { name = line.slice(7); }
      else if (line.startsWith("data: ")) { data.push(line.slice(6)); }
    });
    return [name, data.length ? JSON.parse(data.join("\n")) : {}];
  }

  function handle(name, data) {
    if (name === "reply") {
      live.hidden = false;
      document.getElementById("live-" + data.side).textContent = data.text;
    } else if (name === "done") {
      window.location.assign(data.url);
      return true;
    } else if (name === "error") {
      fail(data.message);
      return true;
    }
    return false;
  }

  async function stream() {
    const response = await fetch(form.dataset.stream, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "text/event-stream" },
    });
    if (!response.ok || !response.body) {
      let detail = "the policy could not answer just now; try again in a moment";
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      fail(typeof detail === "string" ? detail : "check your message and try again");
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const [name, data] = parse(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (handle(name, data)) return;
      }
    }
    fail("the connection ended before the replies were stored; try again");
  }

  form.addEventListener("submit", function (event) {
    busy(true);
    if (!window.fetch || !window.ReadableStream || !form.dataset.stream) return; // the plain form post
    event.preventDefault();
    failure.hidden = true;
    ["A", "B"].forEach(function (side) { document.getElementById("live-" + side).textContent = ""; });
    stream().catch(function () { fail("the connection to the server broke; try again"); });
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); form.requestSubmit(); }
  });
})();
