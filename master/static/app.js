// ai-system chat client: sends "ai-query", shows "ai-response" / "ai-error", the connection state,
// who is logged in, and logs out. Answers go to every tab of the user: one asked in another tab is
// shown here too, once its own acknowledgement could not be the reason it came.
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
  let csrf = ""; // for logout, from /session
  const shown = new Set(); // task ids whose outcome is on the page
  let lastAt = 0; // server time of the newest outcome shown: "ai-sync" asks for what came after it
  const OTHER_TAB_MS = 3000; // an answer with no acknowledgement here by then was asked in another tab

  function toLogin() { window.location.assign("/login"); }

  async function loadSession() {
    const resp = await fetch("/session", { credentials: "same-origin", cache: "no-store" });
    if (resp.status === 401) { toLogin(); return; }
    if (!resp.ok) return;
    const s = await resp.json();
    csrf = s.csrf;
    document.getElementById("user").textContent = s.user + (s.role === "admin" ? " (admin)" : "");
  }

  document.getElementById("logout").addEventListener("click", async () => {
    const resp = await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
    if (resp.ok || resp.status === 401) toLogin();
  });

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

  function note(r) {
    shown.add(r.task_id);
    if (typeof r.finished_at === "number") lastAt = Math.max(lastAt, r.finished_at);
  }

  function showSynced(e) { // an outcome fetched after a (re)connect or a reload
    if (shown.has(e.task_id)) return;
    note(e);
    const kind = e.event === "ai-response" ? "ai" : "error";
    const text = kind === "ai" ? e.answer : e.message;
    const meta = kind === "ai" ? (e.model ? "model: " + e.model : "") : e.code;
    if (pending.has(e.task_id)) { resolve(e.task_id, kind, text, meta); return; }
    if (e.prompt) bubble("user", e.prompt);
    bubble(kind, text, meta);
  }

  function sync() { // what finished while this page was not connected (or before it was loaded)
    socket.timeout(15000).emit("ai-sync", { since: Math.max(0, lastAt - 5) }, (err, resp) => {
      if (err || !resp || !Array.isArray(resp.events)) return;
      resp.events.forEach(showSynced);
    });
  }

  function resolve(taskId, kind, text, meta) {
    const el = pending.get(taskId);
    pending.delete(taskId);
    if (!el) {
      early.set(taskId, [kind, text, meta]);
      setTimeout(() => { // not ours to wait for: a question from another tab of this user
        if (!early.has(taskId)) return;
        early.delete(taskId);
        bubble(kind, text, (meta ? meta + " · " : "") + "asked in another tab");
      }, OTHER_TAB_MS);
      return;
    }
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
  window.aisysChat = { socket: socket, pending: pending, bubble: bubble }; // hook: streaming (stream.js)
  socket.on("connect", () => { setState("connected", "connected"); sync(); });
  socket.on("disconnect", (reason) => {
    setState("disconnected", "disconnected (" + reason + ") – reconnecting");
    if (reason === "io server disconnect") loadSession(); // the server ended it: logged out or disabled?
  });
  socket.on("connect_error", (err) => {
    setState("disconnected", "cannot connect: " + err.message);
    loadSession(); // logged out or expired: back to the login page
  });
  socket.on("ai-response", (r) => { if (shown.has(r.task_id)) return; note(r); resolve(r.task_id, "ai", r.answer, r.model ? "model: " + r.model : ""); });
  socket.on("ai-error", (r) => { if (shown.has(r.task_id)) return; note(r); resolve(r.task_id, "error", r.message, r.code); });
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
      if (window.aisysStream) window.aisysStream.asked(ack.task_id); // hook: text so far + Stop (stream.js)
      if (early.has(ack.task_id)) { const e = early.get(ack.task_id); early.delete(ack.task_id); resolve(ack.task_id, e[0], e[1], e[2]); }
    });
  });
  loadSession();
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
})();
