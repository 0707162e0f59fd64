// The explorer page: one setting -> a seeded prompt -> the model's exact scores, redrawn on each change.
// Every number shown comes from the server (/api/...); this script only lays them out.
"use strict";

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
const $ = (id) => document.getElementById(id);
const state = { families: [], prompt: null, scores: null, bars: null, curve: null };

// --- talking to the server; every user action runs through busy(), which shows errors on the page ---

let pending = 0;
const idleWaiters = [];

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error(data && data.error ? data.error : `HTTP ${res.status}`);
  return data;
}

async function busy(action) {
  pending += 1;
  $("busy").hidden = false;
  try {
    await action();
    $("error").hidden = true;
  } catch (e) {
    $("error").textContent = e.message;
    $("error").hidden = false;
  } finally {
    pending -= 1;
    if (pending === 0) {
      $("busy").hidden = true;
      idleWaiters.splice(0).forEach((resolve) => resolve());
    }
  }
}

// For tests and the console: resolves when no action is running.
window.explorer = { state, idle: () => (pending ? new Promise((r) => idleWaiters.push(r)) : Promise.resolve()) };

// --- the setting ---

function pickedRows() {
  return Array.from(document.querySelectorAll("#tasks tbody tr")).filter((r) => r.querySelector("input[type=checkbox]").checked);
}

function chosen() {
  const picked = pickedRows();
  return {
    tasks: picked.map((r) => r.dataset.task),
    weights: picked.map((r) => Number(r.querySelector("input[type=number]").value)),
  };
}

function setting() {
  const { tasks, weights } = chosen();
  return { tasks, weights, n_examples: Number($("n_examples").value), seed: Number($("seed").value) };
}

function fillTasks() {
  const family = state.families.find((f) => f.family === $("family").value);
  const body = document.querySelector("#tasks tbody");
  body.replaceChildren();
  family.tasks.forEach((t, i) => {
    const row = document.createElement("tr");
    row.dataset.task = t.name;
    const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: i < 2 });
    const weight = Object.assign(document.createElement("input"), { type: "number", min: "0", step: "0.1", value: "1" });
    const cells = [box, t.name, weight, t.example].map((x) => {
      const td = document.createElement("td");
      if (typeof x === "string") td.textContent = x; else td.append(x);
      return td;
    });
    cells[1].title = t.description;
    row.append(...cells);
    body.append(row);
  });
}

function syncLambda() {
  const { tasks, weights } = chosen();
  const two = tasks.length === 2;
  $("lambda").disabled = $("sweep").disabled = !two;
  $("lambda-hint").textContent = two ? `λ is the share of ${tasks[0]}; 1 − λ that of ${tasks[1]}.`
    : "Tick exactly two tasks. λ is the share of the first.";
  if (two && weights[0] + weights[1] > 0) {
    const lam = Math.round((10 * weights[0]) / (weights[0] + weights[1])) / 10;
    $("lambda").value = String(lam);
    $("lambda-value").value = lam.toFixed(1);
  }
}

// --- prompt, scores, bars ---

function taskClass(k) { return k === null || k === undefined ? "task-none" : `task-${k % COLORS.length}`; }

function renderPrompt() {
  const p = state.prompt;
  const box = $("prompt");
  box.replaceChildren(...p.examples.map((e) => {
    const div = document.createElement("div");
    div.className = taskClass(e.task);
    div.textContent = e.line;
    div.title = e.task === null ? "not a drawn example" : p.tasks[e.task];
    return div;
  }));
  $("query").textContent = p.query;
  $("prompt-meta").textContent = `${p.examples.length} examples · query ${p.query}`;
}

async function draw(move = "none", moveTask = 0) {
  const drawnWith = setting();
  state.prompt = await api("/api/prompt", { ...drawnWith, move, move_task: moveTask });
  state.prompt.move = move === "none" ? "as drawn" : `${state.prompt.tasks[moveTask]} ${move}`;
  state.prompt.setting = move === "none" ? drawnWith : null;  // controls are built from it (as drawn only)
  resetControls();
  if (move === "none") document.querySelector("#positions tbody").replaceChildren();  // a new prompt: new rows
  closeEditor();
  renderPrompt();
  await score();
}

function promptText() {
  return state.prompt.examples.map((e) => e.line).concat([state.prompt.query]).join("\n");
}

async function score() {
  const p = state.prompt;
  state.scores = await api("/api/score", { prompt: promptText(), answers: p.answers });
  renderScores();
}

function renderScores() {
  const p = state.prompt, s = state.scores;
  const counts = p.tasks.map((_, k) => p.examples.filter((e) => e.task === k).length);
  const labelled = counts.reduce((a, b) => a + b, 0);
  const shares = counts.map((c) => (labelled ? c / labelled : 0));
  const rows = p.tasks.map((t, k) => {
    const tr = document.createElement("tr");
    tr.dataset.task = t;
    const chip = Object.assign(document.createElement("span"), { className: `chip ${taskClass(k)}` });
    const name = document.createElement("td");
    name.append(chip, t);
    const cells = [[p.answers[k], "answer"], [s.probs[k].toFixed(6), "p"], [s.logprobs[k].toFixed(4), "logp"],
      [s.normalized[k].toFixed(4), "normalized"], [shares[k].toFixed(4), "share"]].map(([text, cls]) => {
      const td = document.createElement("td");
      td.textContent = text;
      td.className = cls === "answer" ? cls : `num ${cls}`;
      return td;
    });
    tr.append(name, ...cells);
    return tr;
  });
  document.querySelector("#scores tbody").replaceChildren(...rows);
  $("other").textContent = `other (no task's answer): ${s.other.toFixed(6)} · ${s.n_tokens} prompt tokens`;
  $("other").dataset.other = String(s.other);
  const labels = p.tasks.concat(["other"]);
  const data = {
    labels,
    datasets: [
      { label: "P(answer)", data: s.probs.concat([s.other]), backgroundColor: p.tasks.map((_, k) => COLORS[k % 8]).concat(["#999"]) },
      { label: "normalised over the answers", data: s.normalized.concat([null]), backgroundColor: "#8a93a6" },
      { label: "in-context share", data: shares.concat([null]), backgroundColor: "#d9dde5" },
    ],
  };
  if (state.bars) { state.bars.data = data; state.bars.update(); } else {
    state.bars = new Chart($("bars"), {
      type: "bar", data,
      options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 1 } } },
    });
  }
  recordPosition();
}

// --- controls: the prompt without each task's examples, and with only them (/api/controls) ---

function resetControls() {
  const p = state.prompt, k = p.tasks.length;
  document.querySelector("#controls-table tbody").replaceChildren();
  let note = `not scored yet: the button scores 2K = ${2 * k} control prompts beside this one.`;
  if (p.move === "edited by hand") note = "this prompt was edited by hand: controls are built from the setting " +
    "that drew a prompt, so an edited prompt has none.";
  else if (!p.setting) note = `controls are built for the prompt as drawn, not for this arrangement (${p.move}); ` +
    "press “as drawn” to score them.";
  else if (k < 2) note = "controls need two tasks or more: with one task, no other task can take its examples.";
  $("controls").disabled = !p.setting || k < 2;
  $("controls-note").textContent = note;
}

async function scoreControls() {
  const p = state.prompt;
  const result = await api("/api/controls", p.setting);
  if (state.prompt !== p) return;  // a new prompt was drawn meanwhile: these controls are not its
  const rows = result.controls.map((c, k) => {
    const tr = document.createElement("tr");
    tr.dataset.task = c.task;
    const name = document.createElement("td");
    name.append(Object.assign(document.createElement("span"), { className: `chip ${taskClass(k)}` }), c.task);
    const cells = [[c.mixed, "mixed", 4], [c.without, "without", 4], [c.effect, "effect", 4], [c.single, "single", 4],
      [c.ratio_to_single, "ratio", 3]].map(([x, cls, digits]) => Object.assign(document.createElement("td"),
      { className: `num ${cls}`, textContent: x === null ? "–" : x.toFixed(digits) }));
    tr.append(name, ...cells);
    return tr;
  });
  document.querySelector("#controls-table tbody").replaceChildren(...rows);
  const k = result.tasks.length;
  $("controls-note").textContent = `scored ${result.n_control_prompts} control prompts (2K, K = ${k}) ` +
    "and the prompt again; one prompt, so no interval: a probe with controls: true gives them over prompts.";
}

// --- editing by hand ---

function openEditor() {
  $("prompt-edit").value = state.prompt.examples.map((e) => e.line).join("\n");
  $("prompt-edit").hidden = $("apply").hidden = false;
  $("prompt").hidden = $("edit").hidden = true;
}

function closeEditor() {
  $("prompt-edit").hidden = $("apply").hidden = true;
  $("prompt").hidden = $("edit").hidden = false;
}

async function applyEdit() {
  // A line keeps its task's colour if it is one of the drawn examples; a new line is nobody's.
  const known = new Map(state.prompt.examples.map((e) => [e.line, e.task]));
  const lines = $("prompt-edit").value.split("\n").filter((l) => l.length > 0);
  state.prompt.examples = lines.map((line) => ({ line, task: known.has(line) ? known.get(line) : null }));
  state.prompt.move = "edited by hand";
  state.prompt.setting = null;
  resetControls();
  closeEditor();
  renderPrompt();
  await score();
}

// --- λ between two tasks ---

async function moveLambda() {
  const lam = Number($("lambda").value);
  $("lambda-value").value = lam.toFixed(1);
  const picked = pickedRows();
  if (picked.length !== 2) return;
  picked[0].querySelector("input[type=number]").value = String(lam);
  picked[1].querySelector("input[type=number]").value = String(Math.round((1 - lam) * 10) / 10);
  await draw();
}

async function sweep() {
  // One request per λ, so the curve grows point by point and other requests can queue in between.
  const base = { ...setting(), weights: null, n_prompts: Number($("sweep-prompts").value) };
  const [t1, t2] = base.tasks;
  const lambdas = Array.from({ length: 11 }, (_, i) => i / 10);
  const series = (label, color, dash) => ({ label, data: [], borderColor: color, backgroundColor: color,
    borderDash: dash || [], pointRadius: dash ? 0 : 3 });
  if (state.curve) state.curve.destroy();
  state.curve = new Chart($("curve"), {
    type: "line",
    data: { labels: lambdas.map((l) => l.toFixed(1)),
      datasets: [series(`P(${t1})`, COLORS[0]), series(`P(${t2})`, COLORS[1]), series("other", "#999"),
        series("λ (the shares)", "#bbb", [4, 4])] },
    options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 1 },
      x: { title: { display: true, text: `λ = share of ${t1}` } } } },
  });
  const points = [];
  for (const lam of lambdas) {
    const q = (await api("/api/sweep", { ...base, lambdas: [lam] })).points[0];
    points.push(q);
    [q.p1, q.p2, q.other, q.lambda].forEach((v, i) => state.curve.data.datasets[i].data.push(v));
    state.curve.update();
  }
  $("curve").dataset.points = JSON.stringify(points);
}

// --- position view: each scored arrangement becomes a row ---

function fillMoves() {
  const { tasks } = chosen();
  const buttons = [["as drawn", "none", 0]];
  tasks.forEach((t, k) => buttons.push([`${t} first`, "first", k], [`${t} last`, "last", k]));
  $("moves").replaceChildren(...buttons.map(([label, move, k]) => {
    const b = Object.assign(document.createElement("button"), { textContent: label });
    b.dataset.move = move;
    b.dataset.task = String(k);
    b.addEventListener("click", () => busy(() => draw(move, k)));
    return b;
  }));
  const head = document.createElement("tr");
  ["arrangement"].concat(tasks.map((t) => `P(${t})`)).forEach((h) => {
    head.append(Object.assign(document.createElement("th"), { textContent: h }));
  });
  document.querySelector("#positions thead").replaceChildren(head);
  document.querySelector("#positions tbody").replaceChildren();
}

function recordPosition() {
  const p = state.prompt;
  const tr = document.createElement("tr");
  tr.append(Object.assign(document.createElement("td"), { textContent: p.move }));
  state.scores.probs.forEach((x) => tr.append(Object.assign(document.createElement("td"), { className: "num", textContent: x.toFixed(4) })));
  const body = document.querySelector("#positions tbody");
  body.prepend(tr);
  while (body.children.length > 6) body.lastChild.remove();
}

// --- what would it write ---

async function topOutputs() {
  const p = state.prompt;
  const result = await api("/api/outputs", { prompt: promptText(), answers: p.answers, tasks: p.tasks });
  const rows = result.outputs.map((o, i) => {
    const tr = document.createElement("tr");
    const k = o.task === null ? null : p.tasks.indexOf(o.task);
    const who = document.createElement("td");
    if (k !== null) who.append(Object.assign(document.createElement("span"), { className: `chip ${taskClass(k)}` }), o.task);
    else who.textContent = o.eos ? "(ends the text)" : "–";
    tr.append(Object.assign(document.createElement("td"), { textContent: String(i + 1) }),
      Object.assign(document.createElement("td"), { textContent: JSON.stringify(o.text) }),
      Object.assign(document.createElement("td"), { className: "num p", textContent: o.prob.toFixed(6) }), who);
    return tr;
  });
  document.querySelector("#outputs tbody").replaceChildren(...rows);
  $("outputs-mass").textContent = `these outputs were found with ${result.covered.toFixed(4)} of the probability; ` +
    `any output not listed has at most ${result.unexplored.toFixed(4)}`;
}

// --- export ---

async function exportConfig() {
  const yaml = await api("/api/export", { ...setting(), n_prompts: 20 });
  $("export-yaml").textContent = yaml;
  $("export-link").href = "data:application/yaml;charset=utf-8," + encodeURIComponent(yaml);
  $("export-box").hidden = false;
}

// --- start ---

function onSettingChange() { syncLambda(); fillMoves(); return busy(() => draw()); }

async function start() {
  const info = await api("/api/info");
  $("model").textContent = `${info.model} · ${info.dtype} · context ${info.max_context} tokens` +
    (info.n_parameters ? ` · ${(info.n_parameters / 1e6).toFixed(0)}M parameters` : "");
  $("top").disabled = !info.enumerate;
  state.families = await api("/api/tasks");
  $("family").replaceChildren(...state.families.map((f) => Object.assign(document.createElement("option"),
    { value: f.family, textContent: `${f.family} (${f.tasks.length} tasks)` })));
  const copy = state.families.find((f) => f.tasks.some((t) => t.name === "copy_op1"));
  if (copy) $("family").value = copy.family;
  fillTasks();
  syncLambda();
  fillMoves();
  await draw();
}

$("family").addEventListener("change", () => { fillTasks(); onSettingChange(); });
$("tasks").addEventListener("change", onSettingChange);
$("n_examples").addEventListener("change", onSettingChange);
$("seed").addEventListener("change", onSettingChange);
$("draw").addEventListener("click", () => busy(() => draw()));
$("lambda").addEventListener("input", () => { $("lambda-value").value = Number($("lambda").value).toFixed(1); });
$("lambda").addEventListener("change", () => busy(moveLambda));
$("sweep").addEventListener("click", () => busy(sweep));
$("edit").addEventListener("click", openEditor);
$("apply").addEventListener("click", () => busy(applyEdit));
$("top").addEventListener("click", () => busy(topOutputs));
$("controls").addEventListener("click", () => busy(scoreControls));
$("export").addEventListener("click", () => busy(exportConfig));
busy(start);
