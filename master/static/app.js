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
  const OTHER_TAB_MS = 3000; // an answer with no acknowledgement here by then was asked in another tab...
  let unacknowledged = 0; // ...unless a question of this page still awaits its acknowledgement (a slow store)
  function whenNoAckIsDue(fn) { // OTHER_TAB_MS from now, or later: once no question here awaits its acknowledgement
    setTimeout(function check() {
      if (unacknowledged > 0) { setTimeout(check, 250); return; } // the emit's 15 s timeout bounds the wait
      fn();
    }, OTHER_TAB_MS);
  }
  // Conversations (history.js): the one this log shows (null: a new one, made by the next question).
  let conversation = null;
  function belongs(r) { return !r.conversation_id || r.conversation_id === conversation || pending.has(r.task_id); }
  function elsewhere(r, kind, text, meta) { // another conversation's, unless its acknowledgement is on its way
    early.set(r.task_id, [kind, text, meta, r]); // r: noted as shown if it turns out to be ours (fromEarly)
    whenNoAckIsDue(() => early.delete(r.task_id));
  }

  function fromEarly(taskId) { // an outcome that came before this page's acknowledgement of its question
    const e = early.get(taskId);
    early.delete(taskId);
    if (e[3]) note(e[3]); // shown now: a later "ai-sync" must not show it again
    resolve(taskId, e[0], e[1], e[2]);
  }

  function toLogin() { window.location.assign("/login"); }

  async function loadSession() {
    let resp;
    try { resp = await fetch("/session", { credentials: "same-origin", cache: "no-store" }); }
    catch (e) { return; } // the server is down or the page is going away: Socket.IO keeps trying
    if (resp.status === 401) { toLogin(); return; }
    if (!resp.ok) return;
    const s = await resp.json();
    csrf = s.csrf;
    document.getElementById("user").textContent = s.user + (s.role === "admin" ? " (admin)" : "");
    const high = document.querySelector('#priority option[value="high"]'); // priority high is for admins only
    if (high) { high.hidden = s.role !== "admin"; high.disabled = s.role !== "admin"; }
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

  // render: an AI answer is Markdown, rendered and sanitized by markdown.js; anything else (the user's
  // question, errors, "thinking…") is set as text. Never innerHTML here: answers are untrusted text.
  function setBody(el, kind, text) {
    if (kind === "ai" && typeof window.renderAnswer === "function") window.renderAnswer(el, text);
    else el.textContent = text;
  }

  function bubble(kind, text, meta) {
    const el = document.createElement("div");
    el.className = "msg " + kind;
    setBody(el, kind, text);
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
    if (shown.has(e.task_id) || !belongs(e)) return; // another conversation's: loaded with it (history.js)
    note(e);
    const stopped = e.event === "ai-error" && e.code === "stopped" && typeof e.partial === "string" && e.partial;
    const kind = e.event === "ai-response" || stopped ? "ai" : "error"; // stream.js: a stopped answer keeps its text
    const text = stopped ? e.partial : kind === "ai" ? e.answer : e.message;
    const meta = stopped ? "stopped" : kind === "ai" ? (e.model ? "model: " + e.model : "") : e.code;
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
      whenNoAckIsDue(() => { // not ours to wait for: a question from another tab of this user
        if (!early.has(taskId)) return;
        early.delete(taskId);
        bubble(kind, text, (meta ? meta + " · " : "") + "asked in another tab");
      });
      return;
    }
    el.className = "msg " + kind;
    setBody(el, kind, text);
    if (meta) {
      const m = document.createElement("span");
      m.className = "meta";
      m.textContent = meta;
      el.appendChild(m);
    }
  }

  const socket = io({ transports: ["websocket"], reconnectionDelayMax: 10000 });
  window.chatSocket = socket; // render: models.js asks this connection for the models served
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
  socket.on("ai-response", (r) => {
    if (shown.has(r.task_id)) return;
    const meta = (r.model ? "model: " + r.model : "") + (r.cached ? (r.model ? " · " : "") + "from the cache" : "");
    if (!belongs(r)) { elsewhere(r, "ai", r.answer, meta); return; }
    note(r); resolve(r.task_id, "ai", r.answer, meta);
  });
  socket.on("ai-error", (r) => {
    if (shown.has(r.task_id)) return;
    if (!belongs(r)) { elsewhere(r, "error", r.message, r.code); return; }
    note(r); resolve(r.task_id, "error", r.message, r.code);
  });
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
    const query = { text: text };
    const model = typeof window.chosenModel === "function" ? window.chosenModel() : ""; // render: the picker (models.js)
    if (model) query.model = model;
    const priority = document.getElementById("priority");
    if (priority && priority.value !== "normal") query.priority = priority.value;
    const askedIn = conversation; // history.js: the question goes to the conversation shown (none: a new one)
    if (askedIn) query.conversation_id = askedIn;
    unacknowledged += 1;
    socket.timeout(15000).emit("ai-query", query, (err, ack) => {
      unacknowledged -= 1;
      if (err) { wait.className = "msg error"; wait.textContent = "The server did not confirm the question. Try again."; return; }
      if (ack && ack.error && ack.error.code === "not_found" && askedIn && conversation === askedIn) {
        conversation = null; // history.js: deleted meanwhile (another tab, retention): the next question starts a new one
        wait.className = "msg error";
        wait.textContent = "This conversation was deleted meanwhile. Send the question again to start a new one.";
        if (!input.value) input.value = text;
        if (hooks.onLost) hooks.onLost(askedIn);
        return;
      }
      if (ack && ack.error) { wait.className = "msg error"; wait.textContent = ack.error.message; return; }
      if (ack.conversation_id && conversation === askedIn) { // still the conversation shown (not switched meanwhile)
        conversation = ack.conversation_id;
        if (hooks.onConversation) hooks.onConversation(ack.conversation_id, !askedIn);
      }
      pending.set(ack.task_id, wait);
      if (window.aisysStream) window.aisysStream.asked(ack.task_id); // hook: text so far + Stop (stream.js)
      if (early.has(ack.task_id)) fromEarly(ack.task_id);
    });
  });
  // Hooks for history.js: show a conversation's messages (or an empty log for a new one), and hear of each
  // question's conversation (set onConversation(id, startedNow)) or that it was deleted meanwhile (onLost(id)).
  function showConversation(id, messages) {
    conversation = id;
    log.replaceChildren();
    pending.clear();
    (messages || []).forEach((m) => {
      bubble("user", m.prompt);
      if (m.state === "answered") { note(m); bubble("ai", m.answer, m.model ? "model: " + m.model : ""); }
      else if (m.state === "failed" && m.error && m.error.code === "stopped" && m.answer) { note(m); bubble("ai", m.answer, "stopped"); }
      else if (m.state === "failed") { note(m); bubble("error", m.error ? m.error.message : "failed", m.error ? m.error.code : ""); }
      else {
        pending.set(m.task_id, bubble("ai pending", "thinking…"));
        if (window.aisysStream) window.aisysStream.asked(m.task_id); // hook: its text so far + Stop (stream.js)
        if (early.has(m.task_id)) fromEarly(m.task_id);
      }
    });
  }
  const hooks = { socket: socket, current: () => conversation, show: showConversation, onConversation: null, onLost: null };
  window.aiChat = hooks;
  loadSession();
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
})();
