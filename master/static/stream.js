// Answers as they are written: appends "ai-response-chunk" text to the answer's bubble, puts a Stop button
// on an answer in progress ("ai-stop"), marks a stopped answer (its text so far stays), and after a reload
// or a reconnect asks for the answers in progress ("ai-partial") and continues them with the next chunks.
// Uses app.js's socket, pending bubbles (task_id -> element) and bubble() through window.aisysChat.
"use strict";
(function () {
  const chat = window.aisysChat;
  if (!chat) return;
  const socket = chat.socket;
  const pending = chat.pending;
  const streams = new Map(); // task_id -> { seq, text, later: Map(seq -> chunk), el }

  function stateOf(taskId) {
    let s = streams.get(taskId);
    if (!s) { s = { seq: 0, text: "", later: new Map(), el: null }; streams.set(taskId, s); }
    return s;
  }

  function stopButton(taskId) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "stop";
    b.textContent = "Stop";
    b.addEventListener("click", () => {
      b.disabled = true;
      socket.timeout(10000).emit("ai-stop", { task_id: taskId }, (err, ack) => {
        if (err || !ack || ack.error) b.disabled = false; // not stopped (finished meanwhile?): the outcome tells
      });
    });
    return b;
  }

  function setText(el, text) { // Markdown, sanitized, as the whole answer will be (markdown.js); else plain text
    if (typeof window.renderAnswer === "function") window.renderAnswer(el, text);
    else el.textContent = text; // never innerHTML
  }

  function render(taskId) { // the text so far, and Stop, in the task's bubble (if this page has it)
    const el = pending.get(taskId);
    if (!el) return;
    const s = stateOf(taskId);
    s.el = el;
    if (s.text) { el.className = "msg ai streaming"; setText(el, s.text); }
    else { el.className = "msg ai pending"; el.textContent = "thinking…"; }
    el.appendChild(stopButton(taskId));
  }

  function applyInOrder(s) { // chunks apply in seq order; one that came early waits for those before it
    while (s.later.has(s.seq + 1)) {
      const c = s.later.get(s.seq + 1);
      s.later.delete(s.seq + 1);
      if (c.reset) s.text = ""; // another worker started the answer again
      s.text += c.text;
      s.seq += 1;
    }
  }

  socket.on("ai-response-chunk", (c) => {
    if (!c || typeof c.task_id !== "string" || !Number.isInteger(c.seq) || typeof c.text !== "string") return;
    const s = stateOf(c.task_id);
    if (c.seq <= s.seq) return; // already in the text (from "ai-partial")
    s.later.set(c.seq, c);
    applyInOrder(s);
    render(c.task_id);
  });

  function finished(r) {
    const s = streams.get(r && r.task_id);
    if (!s) return null;
    streams.delete(r.task_id);
    return s;
  }
  socket.on("ai-response", finished);
  socket.on("ai-error", (r) => { // runs after app.js's handler, which showed the message
    const s = finished(r);
    if (!s || !s.el || r.code !== "stopped" || typeof r.partial !== "string" || !r.partial) return;
    s.el.className = "msg ai stopped";
    setText(s.el, r.partial);
    const m = document.createElement("span");
    m.className = "meta";
    m.textContent = "stopped";
    s.el.appendChild(m);
  });

  socket.on("connect", () => { // answers in progress: after a reload, their question and text so far
    socket.timeout(15000).emit("ai-partial", {}, (err, resp) => {
      if (err || !resp || !Array.isArray(resp.tasks)) return;
      resp.tasks.forEach((t) => {
        if (typeof t.task_id !== "string" || !Number.isInteger(t.seq) || typeof t.text !== "string") return;
        const s = stateOf(t.task_id);
        if (t.seq > s.seq) { s.seq = t.seq; s.text = t.text; applyInOrder(s); }
        if (!pending.has(t.task_id)) { // not asked on this page (it was reloaded)
          const history = window.aiChat; // another conversation's: shown when that one is opened (history.js)
          if (t.conversation_id && history && t.conversation_id !== history.current()) return;
          chat.bubble("user", String(t.prompt || ""));
          pending.set(t.task_id, chat.bubble("ai pending", "thinking…"));
        }
        render(t.task_id);
      });
    });
  });

  window.aisysStream = { asked: render }; // app.js calls it when a question is acknowledged
})();
