// ai-system chat client: sends "ai-query", shows "ai-response" / "ai-error" and the connection state.
"use strict";
(function () {
  const log = document.getElementById("log");
  const form = document.getElementById("ask");
  const input = document.getElementById("question");
  const send = document.getElementById("send");
  const state = document.getElementById("state");
  const pending = new Map(); // task_id -> bubble element
  const early = new Map(); // task_id -> [kind, text, meta] for answers that beat their acknowledgement
  let maxChars = Infinity; // the server's limit, sent on connect ("limits")

  function setState(name, text) {
    state.className = "state " + name;
    state.textContent = text;
    send.disabled = name !== "connected";
  }

  function bubble(kind, text, meta) {
    const el = document.createElement("div");
    el.className = "msg " + kind;
    el.textContent = text; // never innerHTML: answers are untrusted text
    if (meta) {
      const m = document.createElement("span");
      m.className = "meta";
      m.textContent = meta;
      el.appendChild(m);
    }
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    return el;
  }

  function resolve(taskId, kind, text, meta) {
    const el = pending.get(taskId);
    pending.delete(taskId);
    if (!el) { early.set(taskId, [kind, text, meta]); return; }
    el.className = "msg " + kind;
    el.textContent = text;
    if (meta) {
      const m = document.createElement("span");
      m.className = "meta";
      m.textContent = meta;
      el.appendChild(m);
    }
  }

  const socket = io({ transports: ["websocket"], reconnectionDelayMax: 10000 });
  socket.on("connect", () => setState("connected", "connected"));
  socket.on("disconnect", (reason) => setState("disconnected", "disconnected (" + reason + ") – reconnecting"));
  socket.on("connect_error", (err) => setState("disconnected", "cannot connect: " + err.message));
  socket.on("ai-response", (r) => resolve(r.task_id, "ai", r.answer, r.model ? "model: " + r.model : ""));
  socket.on("ai-error", (r) => resolve(r.task_id, "error", r.message, r.code));
  socket.on("limits", (l) => { if (l && Number.isInteger(l.max_prompt_chars)) maxChars = l.max_prompt_chars; });

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text || !socket.connected) return;
    const chars = Array.from(text).length; // code points, as the server counts
    if (chars > maxChars) { // the question stays in the box to be shortened
      bubble("error", "The question has " + chars + " characters; the limit is " + maxChars + ". Shorten it.", "prompt_too_long");
      return;
    }
    bubble("user", text);
    const wait = bubble("ai pending", "thinking…");
    input.value = "";
    socket.timeout(15000).emit("ai-query", { text: text }, (err, ack) => {
      if (err) { wait.className = "msg error"; wait.textContent = "The server did not confirm the question. Try again."; return; }
      if (ack && ack.error) { wait.className = "msg error"; wait.textContent = ack.error.message; return; }
      pending.set(ack.task_id, wait);
      if (early.has(ack.task_id)) { const e = early.get(ack.task_id); early.delete(ack.task_id); resolve(ack.task_id, e[0], e[1], e[2]); }
    });
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
})();
