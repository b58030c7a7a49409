// The live admin page: "admin-stats" every 2 s over Socket.IO (admins only), drawn with uPlot (vendored, MIT).
"use strict";
(function () {
  const state = document.getElementById("state");
  const summary = document.getElementById("summary");
  const tbody = document.querySelector("#workers tbody");
  const POINTS = 150; // 5 minutes at one point every 2 s
  const series = { t: [], rate: [], p50: [], p95: [], p99: [] };
  const width = () => Math.min(900, document.body.clientWidth - 32);
  const rateChart = new uPlot({ width: width(), height: 160, series: [{}, { label: "answers/s", stroke: "#2f6fed" }] },
    [[], []], document.getElementById("rate-chart"));
  const latencyChart = new uPlot({
    width: width(), height: 180,
    series: [{}, { label: "p50", stroke: "#2f6fed" }, { label: "p95", stroke: "#c47f00" }, { label: "p99", stroke: "#b3261e" }],
  }, [[], [], [], []], document.getElementById("latency-chart"));

  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
  const ms = (s) => (s === null || s === undefined ? null : Math.round(s * 10000) / 10);

  function render(s) {
    summary.textContent = "queued " + s.queued + " · open " + s.open_tasks + " · " + s.answers_per_s.toFixed(1) +
      " answers/s · p50/p95/p99 " + [s.p50_s, s.p95_s, s.p99_s].map((x) => (x === null ? "–" : ms(x) + " ms")).join(" / ");
    tbody.replaceChildren(...s.workers.map((w) => {
      const tr = document.createElement("tr");
      tr.className = "worker " + w.state;
      [w.worker_id, w.state + (w.backed_off ? " (backed off)" : ""), w.free_slots + " / " + w.capacity,
        w.models.join(", "), w.last_seen_s_ago === null ? "–" : w.last_seen_s_ago + " s ago", String(w.done)]
        .forEach((v) => tr.appendChild(cell(v)));
      return tr;
    }));
    series.t.push(s.at); series.rate.push(s.answers_per_s);
    series.p50.push(ms(s.p50_s)); series.p95.push(ms(s.p95_s)); series.p99.push(ms(s.p99_s));
    Object.values(series).forEach((a) => { if (a.length > POINTS) a.shift(); });
    rateChart.setData([series.t, series.rate]);
    latencyChart.setData([series.t, series.p50, series.p95, series.p99]);
  }

  const socket = io({ transports: ["websocket"] });
  socket.on("connect", () => { state.className = "state connected"; state.textContent = "live"; });
  socket.on("disconnect", () => { state.className = "state disconnected"; state.textContent = "disconnected"; });
  socket.on("connect_error", () => { state.className = "state disconnected"; state.textContent = "cannot connect"; });
  socket.on("admin-stats", render);
})();
