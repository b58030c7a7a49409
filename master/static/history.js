// ai-system conversation history: the panel lists the user's conversations ("ai-conversations"), loads one
// into the log ("ai-conversation"), starts a new one, deletes one ("ai-conversation-delete") or all of the
// user's data ("ai-delete-my-data"), each after a confirmation. It talks to app.js only through
// window.aiChat (socket, current(), show(id, messages), onConversation). The conversation a tab shows is
// kept in sessionStorage, so a reload shows it again. Titles are user text: textContent only.
"use strict";
(function () {
  const chat = window.aiChat;
  if (!chat) return;
  const list = document.getElementById("conversations");
  const more = document.getElementById("more-conversations");
  const status = document.getElementById("history-status");
  const KEY = "aisys-conversation";
  const PAGE = 20;
  let nextBefore = null;
  let restored = false;

  function say(text) { status.textContent = text; }
  function saved() { try { return sessionStorage.getItem(KEY); } catch (e) { return null; } }
  function remember(id) { try { if (id) sessionStorage.setItem(KEY, id); else sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ } }

  function mark() { // highlight the conversation the log shows
    for (const li of list.children) li.classList.toggle("current", li.dataset.id === chat.current());
  }

  function item(c) {
    const li = document.createElement("li");
    li.dataset.id = c.conversation_id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = c.title; // never innerHTML: the title is the user's question
    open.title = "Last used " + new Date(c.updated_at * 1000).toLocaleString();
    open.addEventListener("click", () => load(c.conversation_id));
    const del = document.createElement("button");
    del.type = "button";
    del.className = "delete";
    del.textContent = "Delete";
    del.setAttribute("aria-label", "Delete the conversation " + c.title);
    del.addEventListener("click", () => remove(c));
    li.append(open, del);
    return li;
  }

  function ask(event, args, done) { // every event answers through its acknowledgement
    chat.socket.timeout(15000).emit(event, args, (err, resp) => {
      if (err || !resp) { say("The server did not answer. Try again."); return; }
      if (resp.error) { say(resp.error.message); return; }
      done(resp);
    });
  }

  function refresh(append, then) {
    const args = { limit: PAGE };
    if (append && nextBefore !== null) args.before = nextBefore;
    ask("ai-conversations", args, (resp) => {
      if (!append) list.replaceChildren();
      resp.conversations.forEach((c) => list.appendChild(item(c)));
      nextBefore = resp.next_before;
      more.hidden = nextBefore === null;
      say(list.children.length ? "" : "No conversations yet.");
      mark();
      if (then) then();
    });
  }

  function load(id) {
    chat.socket.timeout(15000).emit("ai-conversation", { conversation_id: id }, (err, resp) => {
      if (err || !resp) { say("The server did not answer. Try again."); return; }
      if (resp.error) { // deleted meanwhile (another tab, retention): forget it
        if (saved() === id) remember(null);
        say(resp.error.message);
        refresh(false);
        return;
      }
      remember(id);
      chat.show(id, resp.messages);
      say("");
      mark();
    });
  }

  function startNew() {
    remember(null);
    chat.show(null, []);
    mark();
    document.getElementById("question").focus();
  }

  function remove(c) {
    if (!window.confirm("Delete the conversation \u201c" + c.title + "\u201d and all its answers?")) return;
    ask("ai-conversation-delete", { conversation_id: c.conversation_id }, () => {
      if (chat.current() === c.conversation_id) startNew();
      refresh(false);
    });
  }

  function removeAll() {
    if (!window.confirm("Delete all your conversations and answers? This cannot be undone.")) return;
    ask("ai-delete-my-data", { confirm: true }, (resp) => {
      const d = resp.deleted || {};
      startNew();
      refresh(false, () => say("Deleted " + (d.conversations || 0) + " conversations and " + (d.tasks || 0) + " questions."));
    });
  }

  chat.onLost = (id) => { if (saved() === id) remember(null); refresh(false); }; // deleted meanwhile
  document.getElementById("new-conversation").addEventListener("click", startNew);
  document.getElementById("delete-all").addEventListener("click", removeAll);
  more.addEventListener("click", () => refresh(true));
  chat.onConversation = (id, startedNow) => { // a question started one (list it) or continued one (move it up)
    remember(id);
    const li = [...list.children].find((e) => e.dataset.id === id);
    if (startedNow || !li) { refresh(false); return; }
    list.prepend(li);
    mark();
  };
  function connected() {
    refresh(false);
    if (restored) return;
    restored = true;
    const id = saved();
    if (id) load(id); // after a reload: the conversation this tab showed
  }
  chat.socket.on("connect", connected);
  if (chat.socket.connected) connected();
})();
