// The API tokens page: list your tokens, make one (shown once, with a copy button), revoke one.
// Talks to /api/v1/tokens with the session cookie; changes carry X-CSRF-Token from /session.
"use strict";
(function () {
  const API = "/api/v1/tokens";
  const tbody = document.querySelector("#tokens tbody");
  const form = document.getElementById("new-token");
  const labelInput = document.getElementById("token-label");
  const created = document.getElementById("created");
  const value = document.getElementById("new-token-value");
  const copyState = document.getElementById("copy-state");
  const errorBox = document.getElementById("error");
  let csrf = "";

  function toLogin() { window.location.assign("/login"); }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  async function call(method, url, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(url, { method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (resp.status === 401) { toLogin(); throw new Error("not logged in"); }
    if (!resp.ok) {
      let message = "The server said " + resp.status + ".";
      try { message = (await resp.json()).error.message || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return resp.status === 204 ? null : resp.json();
  }

  const when = (t) => (t === null || t === undefined ? "never" : new Date(t * 1000).toLocaleString());
  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

  function render(tokens) {
    if (tokens.length === 0) {
      const tr = document.createElement("tr");
      const td = cell("No tokens yet.");
      td.colSpan = 4;
      tr.appendChild(td);
      tbody.replaceChildren(tr);
      return;
    }
    tbody.replaceChildren(...tokens.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.id = String(t.id);
      [t.label, when(t.created_at), when(t.last_used_at)].forEach((v) => tr.appendChild(cell(v)));
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "revoke";
      revoke.textContent = "Revoke";
      revoke.setAttribute("aria-label", "Revoke " + t.label);
      revoke.addEventListener("click", () => revokeToken(t.id, revoke));
      const td = document.createElement("td");
      td.appendChild(revoke);
      tr.appendChild(td);
      return tr;
    }));
  }

  async function refresh() { render((await call("GET", API)).tokens); }

  async function revokeToken(id, button) {
    button.disabled = true;
    try {
      await call("DELETE", API + "/" + id);
      showError("");
      await refresh();
    } catch (e) {
      button.disabled = false;
      showError(e.message);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const label = labelInput.value.trim();
    if (!label) return;
    try {
      const made = await call("POST", API, { label });
      value.value = made.token;
      copyState.textContent = "Not copied yet: use the button, or select the token and copy it.";
      created.hidden = false;
      value.focus();
      value.select();
      labelInput.value = "";
      showError("");
      await refresh();
    } catch (e) {
      showError(e.message);
    }
  });

  document.getElementById("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value.value);
      copyState.textContent = "Copied. It is not shown again once you leave this page.";
    } catch (e) {
      value.select();
      copyState.textContent = "Copying is not allowed here: the token is selected, press Ctrl-C (or ⌘-C).";
    }
  });

  (async function start() {
    const resp = await fetch("/session", { credentials: "same-origin", cache: "no-store" });
    if (resp.status === 401) { toLogin(); return; }
    const s = await resp.json();
    csrf = s.csrf;
    document.getElementById("user").textContent = s.user;
    try { await refresh(); } catch (e) { showError(e.message); }
  })();
})();
