// The mechanism panels: lens, attribution, steering. Uses app.js's api(), busy(), state, $, promptText(),
// setting() and COLORS; every number comes from the server.
"use strict";

const mech = { lens: null, attribution: null, steer: null, real: null, charts: {} };
window.explorer.mech = mech;

function chart(id, config) {
  if (mech.charts[id]) mech.charts[id].destroy();
  mech.charts[id] = new Chart($(id), config);
}

async function showLens() {
  const p = state.prompt;
  const r = await api("/api/lens", { prompt: promptText(), answers: p.answers });
  mech.lens = r;
  const layers = Array.from({ length: r.layers }, (_, i) => String(i));
  chart("lens-chart", { type: "line", data: { labels: layers, datasets: r.probs.map((row, k) => ({
    label: p.tasks[k], data: row, borderColor: COLORS[k % COLORS.length], backgroundColor: COLORS[k % COLORS.length],
    pointRadius: 2 })) },
    options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0 },
      x: { title: { display: true, text: "layer" } } } } });
  $("lens-table").querySelector("tbody").replaceChildren(...p.tasks.map((t, k) => {
    const tr = document.createElement("tr");
    const top = r.probs[k].findIndex((x, l) => r.probs.every((o, j) => j === k || o[l] < x));
    [t, top < 0 ? "never" : String(top), r.probs[k][r.layers - 1].toFixed(6), r.exact_first[k].toFixed(6)]
      .forEach((v) => { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); });
    return tr;
  }));
}

function fillAttributionTasks() {
  const p = state.prompt;
  if (!p) return;
  const sel = $("attribution-task");
  const keep = sel.value;
  sel.replaceChildren(...p.tasks.map((t, k) => { const o = document.createElement("option"); o.value = String(k); o.textContent = t; return o; }));
  if (keep && Number(keep) < p.tasks.length) sel.value = keep;
}

async function attribute() {
  const p = state.prompt;
  const k = Number($("attribution-task").value || 0);
  const r = await api("/api/attribution", { prompt: promptText(), answers: p.answers });
  mech.attribution = r;
  const effects = r.effect.map((e) => e[k]);
  const lim = Math.max(1e-9, ...effects.map(Math.abs));
  $("attribution").replaceChildren(...r.examples.map((line, i) => {
    const div = document.createElement("div");
    const e = effects[i], a = Math.min(1, Math.abs(e) / lim);
    div.style.background = e >= 0 ? `rgba(214, 39, 40, ${a * 0.6})` : `rgba(31, 119, 180, ${a * 0.6})`;
    div.dataset.effect = String(e);
    div.textContent = `${line}   ${e >= 0 ? "+" : ""}${e.toFixed(4)}`;
    return div;
  }));
}

function showSteerValue() {
  if (!mech.steer) return;
  const i = Number($("steer-lambda").value);
  const s = mech.steer;
  $("steer-value").value = `λ ${s.lambdas[i].toFixed(1)}: P(${s.tasks[0]}) ${s.p1[i].toFixed(4)}, P(${s.tasks[1]}) ${s.p2[i].toFixed(4)}`;
}

async function steer() {
  const base = { ...setting(), weights: null };
  if (base.tasks.length !== 2) throw new Error("tick exactly two tasks to steer between them");
  const layer = $("steer-layer").value;
  const s = await api("/api/steer", { ...base, layer: layer === "" ? null : Number(layer),
    n_points: Number($("steer-points").value), n_vector_prompts: Number($("steer-prompts").value) });
  $("steer-lambda").max = String(s.lambdas.length - 1);
  $("steer-lambda").value = String(Math.floor((s.lambdas.length - 1) / 2));
  const real = await api("/api/sweep", { ...base, lambdas: s.lambdas, n_prompts: 1 });
  mech.steer = s;
  mech.real = real;
  const [t1, t2] = s.tasks;
  const line = (label, data, color, dash) => ({ label, data, borderColor: color, backgroundColor: color,
    borderDash: dash || [], pointRadius: 2 });
  chart("steer-chart", { type: "line", data: { labels: s.lambdas.map((l) => l.toFixed(1)), datasets: [
    line(`P(${t1}) steered`, s.p1, COLORS[0]), line(`P(${t2}) steered`, s.p2, COLORS[1]),
    line(`P(${t1}) real prompts`, real.points.map((q) => q.p1), COLORS[0], [5, 4]),
    line(`P(${t2}) real prompts`, real.points.map((q) => q.p2), COLORS[1], [5, 4])] },
    options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 1 },
      x: { title: { display: true, text: `λ = weight (vector) or share (prompts) of ${t1}; layer ${s.layer}` } } } } });
  showSteerValue();
}

$("lens").addEventListener("click", () => busy(showLens));
$("attribute").addEventListener("click", () => busy(attribute));
$("steer").addEventListener("click", () => busy(steer));
$("steer-lambda").addEventListener("input", showSteerValue);
new MutationObserver(fillAttributionTasks).observe($("prompt"), { childList: true });
