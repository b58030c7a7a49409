// The model picker: fills <select id="model"> with the models that live workers serve ("ai-models" on every
// connect, and the "models" event the server pushes when that set changes); app.js sends the choice with
// each question (window.chosenModel). The choice is remembered in this browser; while no live worker serves
// it, the picker shows the default and the choice comes back when the model does.
"use strict";
(function () {
  const select = document.getElementById("model");
  const socket = window.chatSocket; // set by app.js (loaded before this file)
  window.chosenModel = () => (select ? select.value : "");
  if (!select || !socket) return;
  const KEY = "aisys-model";
  let wanted = "";
  try { wanted = window.localStorage.getItem(KEY) || ""; } catch (err) { wanted = ""; }

  function fill(list) {
    if (!list || !Array.isArray(list.models)) return;
    const models = list.models.filter((m) => typeof m === "string");
    const label = typeof list.default === "string" && list.default ? "Default (" + list.default + ")" : "Default model";
    select.replaceChildren(new Option(label, ""), ...models.map((m) => new Option(m, m)));
    select.value = models.includes(wanted) ? wanted : "";
    select.title = models.length ? "Model" : "No worker is connected";
  }

  select.addEventListener("change", () => {
    wanted = select.value;
    try { window.localStorage.setItem(KEY, wanted); } catch (err) { /* not remembered: private mode */ }
  });
  socket.on("models", fill);
  function ask() { socket.timeout(10000).emit("ai-models", (err, resp) => { if (!err) fill(resp); }); }
  socket.on("connect", ask);
  if (socket.connected) ask();
})();
