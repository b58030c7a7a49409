// Renders /api/v1/openapi.json as a list of operations (no third-party UI, no CDN, same CSP as the chat).
"use strict";
(async function () {
  const root = document.getElementById("api");
  const doc = await (await fetch("/api/v1/openapi.json", { cache: "no-store" })).json();
  const schemaName = (s) => (s && s.$ref ? s.$ref.split("/").pop() : s ? JSON.stringify(s) : "");
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text) e.textContent = text; // never innerHTML
    if (cls) e.className = cls;
    return e;
  }
  root.appendChild(el("p", "Authenticate with Authorization: Bearer <token> (make one on the chat page or with " +
    "scripts/users.sh token NAME), or with the chat's session cookie plus X-CSRF-Token for changes."));
  Object.entries(doc.paths).forEach(([path, item]) => {
    Object.entries(item).forEach(([method, op]) => {
      const box = el("section", null, "msg ai");
      box.appendChild(el("h3", method.toUpperCase() + " " + path));
      if (op.summary || op.description) box.appendChild(el("p", op.summary || op.description));
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (body) box.appendChild(el("p", "Body: " + schemaName(body.schema), "meta"));
      const codes = Object.entries(op.responses || {}).map(([code, r]) => {
        const c = r.content && r.content["application/json"];
        return code + (c ? " " + schemaName(c.schema) : "");
      });
      box.appendChild(el("p", "Responses: " + codes.join(", "), "meta"));
      root.appendChild(box);
    });
  });
  const schemas = (doc.components && doc.components.schemas) || {};
  root.appendChild(el("h2", "Schemas"));
  Object.entries(schemas).forEach(([name, s]) => {
    const box = el("section", null, "msg ai");
    box.appendChild(el("h3", name));
    Object.entries(s.properties || {}).forEach(([prop, p]) => {
      box.appendChild(el("p", prop + ": " + (p.type || schemaName(p) || (p.anyOf ? "one of " + p.anyOf.map((x) => x.type || schemaName(x)).join("/") : "")) +
        ((s.required || []).includes(prop) ? " (required)" : ""), "meta"));
    });
    root.appendChild(box);
  });
})();
