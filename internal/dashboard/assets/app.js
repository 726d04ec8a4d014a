// reconcile's dashboard: the status stream draws the services, the records
// stream fills the timeline. Both are EventSources, which reconnect by
// themselves when the daemon restarts. Nothing here writes to the daemon.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 250, COL_GAP = 90, ROW_GAP = 24, MARK = 40, MARK_W = 76, PER_ROW = 3, PAD = 16;
const MAX_RECORDS = 500;

let status = null;       // the last status
// ?project=NAME: one project of an agent; without it an agent's page lists
// its projects, each a link to its own page
const chosen = new URLSearchParams(location.search).get("project") || "";
const only = chosen ? "project=" + encodeURIComponent(chosen) : "";
let projectPrefix = "";  // "project-", stripped from container names
let meanings = {};       // reason -> its meaning, from /reasons
const userStopped = new Set(); // containers the user stopped (StoppedByUser)

// What a record says, in a learner's words: the container, then this
// phrase, then the record's own message.
const PHRASES = {
  ContainerExited: "went down",
  ContainerMissing: "is missing",
  ContainerUnhealthy: "fails its healthcheck",
  Started: "was started again by reconcile",
  Restarted: "was restarted by reconcile",
  Created: "was created by reconcile",
  Recreated: "was recreated by reconcile",
  BackOff: "will be restarted after a pause",
  RestartBudgetExhausted: "used its whole restart budget, so it is left down",
  Stopped: "was stopped to end the engine's restart loop",
  StoppedByUser: "was stopped by you: left down",
  RemovedByUser: "was removed by you: left absent",
  NotRestarted: "is not restarted by its policy",
  DependencyNotReady: "waits for a dependency",
  DependencyReady: "has its dependency ready",
  Synced: "matches the compose file again",
  HookFailed: "had a lifecycle hook fail",
  EngineDisconnected: "lost the engine",
  EngineConnected: "connected to the engine",
};

function el(tag, attrs, parent, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function short(name) {
  return name && name.startsWith(projectPrefix) ? name.slice(projectPrefix.length) : (name || "");
}

// markState names what a replica is doing, for its shape and its label.
function markState(c) {
  switch (c.state) {
    case "running":
      if (c.health === "unhealthy") return ["unhealthy", "unhealthy"];
      if (c.health === "starting") return ["starting", "starting"];
      return ["running", c.health === "healthy" ? "healthy" : "running"];
    case "restarting": return ["restarting", "restarting"];
    case "created": return ["created", "created"];
    case "paused": return ["paused", "paused"];
    default:
      if (userStopped.has(c.name)) return ["stopped", "stopped by you"];
      return ["exited", c.exitCode !== undefined && c.exitCode !== null ? "exit " + c.exitCode : c.state];
  }
}

function shape(kind, g, x, y) {
  const r = 9;
  switch (kind) {
    case "unhealthy": return el("polygon", {class: "m-unhealthy", points: `${x},${y - r} ${x + r},${y + r} ${x - r},${y + r}`}, g);
    case "restarting": return el("polygon", {class: "m-restarting", points: `${x},${y - r} ${x + r},${y} ${x},${y + r} ${x - r},${y}`}, g);
    case "exited": return el("rect", {class: "m-exited", x: x - r + 1, y: y - r + 1, width: 2 * r - 2, height: 2 * r - 2}, g);
    case "paused": return el("rect", {class: "m-paused", x: x - r + 1, y: y - r + 1, width: 2 * r - 2, height: 2 * r - 2}, g);
    case "stopped": return el("rect", {class: "m-stopped", x: x - r + 1, y: y - r + 1, width: 2 * r - 2, height: 2 * r - 2}, g);
    default: return el("circle", {class: "m-" + kind, cx: x, cy: y, r: r - 1}, g);
  }
}

// depths places each service one column right of its deepest dependency.
function depths(services) {
  const by = Object.fromEntries(services.map(s => [s.service, s]));
  const memo = {};
  const depth = (name, seen) => {
    if (memo[name] !== undefined) return memo[name];
    if (seen.has(name) || !by[name]) return 0;
    seen.add(name);
    let d = 0;
    for (const dep of by[name].dependsOn || []) if (by[dep.service]) d = Math.max(d, depth(dep.service, seen) + 1);
    return (memo[name] = d);
  };
  services.forEach(s => depth(s.service, new Set()));
  return memo;
}

function countdown(iso) {
  const ms = Date.parse(iso) - Date.now();
  return ms > 0 ? `next try in ${(ms / 1000).toFixed(1)} s` : "next try now";
}

function drawGraph() {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  if (!status) return;
  const services = status.services || [];
  const depth = depths(services);
  const columns = [];
  for (const s of services) (columns[depth[s.service]] ||= []).push(s);
  const pos = {};
  let height = 0;
  columns.forEach((col, ci) => {
    let y = PAD;
    for (const s of col) {
      const rows = Math.max(1, Math.ceil(Math.max(s.containers.length, s.desired) / PER_ROW));
      const h = 78 + rows * MARK;
      pos[s.service] = {x: PAD + ci * (BOX_W + COL_GAP), y, h};
      y += h + ROW_GAP;
    }
    height = Math.max(height, y);
  });
  const width = PAD * 2 + columns.length * BOX_W + Math.max(0, columns.length - 1) * COL_GAP;
  svg.setAttribute("viewBox", `0 0 ${Math.max(width, 300)} ${Math.max(height, 120)}`);
  el("defs", {}, svg).innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7b8494"/></marker>';

  // edges first, under the boxes: from a service to what it waits for
  for (const s of services) {
    for (const dep of s.dependsOn || []) {
      const a = pos[s.service], b = pos[dep.service];
      if (!a || !b) continue;
      const g = el("g", {class: "edge", "data-from": s.service, "data-to": dep.service}, svg);
      const x1 = a.x, y1 = a.y + 24, x2 = b.x + BOX_W, y2 = b.y + 24;
      const mx = (x1 + x2) / 2;
      el("path", {d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)"}, g);
      const cond = dep.condition.replace("service_", "").replace("completed_successfully", "completed");
      el("text", {x: mx, y: (y1 + y2) / 2 - 4, "text-anchor": "middle"}, g, cond + (dep.restart ? " · restart" : ""));
    }
  }

  for (const s of services) {
    const p = pos[s.service];
    const g = el("g", {class: `svc h-${s.health}`, "data-service": s.service, "data-health": s.health, transform: `translate(${p.x},${p.y})`}, svg);
    el("rect", {class: "box", width: BOX_W, height: p.h, rx: 6}, g);
    el("text", {class: "name", x: 10, y: 20}, g, s.service);
    el("text", {class: "detail", x: BOX_W - 10, y: 20, "text-anchor": "end"}, g, `${s.health} · ${s.sync}`);
    const budget = s.restartsAllowed > 0 ? `restarts ${s.restartsUsed} of ${s.restartsAllowed}` : `restarts ${s.restartsUsed}`;
    el("text", {class: "detail", x: 10, y: 38}, g, `${s.healthy}/${s.desired} healthy · ${budget}`);
    const next = s.nextAttempt ? el("text", {class: "detail countdown", x: 10, y: 54, "data-at": s.nextAttempt}, g, countdown(s.nextAttempt)) : null;
    if (!next && s.reason) {
      const reason = s.reason.length > 38 ? s.reason.slice(0, 37) + "…" : s.reason;
      el("text", {class: "alert", x: 10, y: 54}, g, reason).appendChild(el("title", {}, null, s.reason));
    }
    s.containers.slice().sort((a, b) => a.number - b.number).forEach((c, i) => {
      const [kind, label] = markState(c);
      const x = 40 + (i % PER_ROW) * MARK_W, y = 76 + Math.floor(i / PER_ROW) * MARK;
      const m = el("g", {class: "replica", "data-container": c.name, "data-node": c.node || "", "data-state": kind, "data-upstreams": (c.upstreams || []).join(","), "data-left-down": c.leftDown || ""}, g);
      // a replica left down on purpose holds no dependent back while another replica meets its condition
      const leftDown = c.leftDown ? ` — left down (${c.leftDown}); dependents run on the other replicas` : "";
      // a Swarm task says which node it runs on (--swarm)
      const node = c.node ? ` on ${c.node}` : "";
      el("title", {}, m, `${short(c.name)}${node}: ${label}${c.lastExit ? " (" + c.lastExit + ")" : ""}${leftDown}${(c.upstreams || []).length ? "; in upstream " + c.upstreams.join(", ") : ""}`);
      shape(kind, m, x, y);
      el("text", {x, y: y + 20, "text-anchor": "middle"}, m, `#${c.number} ${c.leftDown ? "left down" : label}`);
      if ((c.upstreams || []).length) el("text", {class: "lb", x: x + 9, y: y - 8}, m, "LB");
    });
  }
}

function updateSummary() {
  const sum = document.getElementById("summary");
  if (!status) return;
  const bad = (status.services || []).filter(s => s.health !== "Healthy" || s.sync !== "Synced");
  sum.textContent = `${status.health}, ${status.sync}` + (bad.length ? ` — ${bad.map(s => s.service + ": " + (s.reason || s.health)).join("; ")}` : "");
  // the git source's commit in force (--git), after the project's name
  document.getElementById("project").textContent = status.project + (status.revision ? " @ " + status.revision : "");
  // a project's containers are project-service-N, a stack's tasks stack_service.N
  projectPrefix = status.project + ((status.services || []).some(s => (s.containers || []).some(c => c.node)) ? "_" : "-");
  const sel = document.getElementById("filter-service");
  const have = new Set([...sel.options].map(o => o.value));
  for (const s of status.services || []) {
    if (!have.has(s.service)) sel.appendChild(new Option(s.service, s.service));
  }
}

// drawProjects lists an agent's projects, linked to their pages, and those
// it does not reconcile, with why.
function drawProjects(all) {
  const nav = document.getElementById("projects");
  nav.replaceChildren();
  const bad = all.projects.filter(p => p.health !== "Healthy" || p.sync !== "Synced");
  document.getElementById("summary").textContent =
    `${all.projects.length} project(s)` + (bad.length ? ` — ${bad.length} not healthy and in sync` : ", all healthy and in sync") +
    ((all.problems || []).length ? `; ${all.problems.length} not reconciled` : "");
  const list = document.createElement("ul");
  for (const p of all.projects) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "?project=" + encodeURIComponent(p.project);
    a.textContent = p.project;
    li.append(a, `: ${p.health}, ${p.sync}`);
    list.appendChild(li);
  }
  for (const p of all.problems || []) {
    const li = document.createElement("li");
    li.className = "problem";
    li.textContent = `${p.project || "?"} (${p.source}): ${p.reason}: ${p.message}`;
    list.appendChild(li);
  }
  nav.appendChild(list);
}

function tick() {
  for (const t of document.querySelectorAll("#graph .countdown")) t.textContent = countdown(t.getAttribute("data-at"));
}

function applyFilters() {
  const svc = document.getElementById("filter-service").value;
  const type = document.getElementById("filter-type").value;
  for (const li of document.querySelectorAll("#timeline li")) {
    const hide = (svc && li.dataset.service !== svc) || (type && li.dataset.type !== type);
    li.classList.toggle("hidden", Boolean(hide));
  }
}

function addRecord(r) {
  if (r.container) {
    if (r.reason === "StoppedByUser") userStopped.add(r.container);
    else if (["Started", "Created", "Recreated", "Restarted"].includes(r.reason)) userStopped.delete(r.container);
  }
  const list = document.getElementById("timeline");
  const li = document.createElement("li");
  li.className = `record ${r.type}`;
  li.dataset.reason = r.reason;
  li.dataset.type = r.type;
  li.dataset.service = r.service || "";
  li.dataset.container = r.container || "";
  const time = document.createElement("time");
  time.dateTime = r.time;
  time.textContent = new Date(r.time).toLocaleTimeString();
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = r.type === "Warning" ? "⚠ warning" : "normal";
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = short(r.container) || r.service || "project";
  const msg = document.createElement("span");
  msg.className = "msg";
  msg.textContent = `${PHRASES[r.reason] || meanings[r.reason] || r.reason}: ${r.message}`;
  li.title = `${r.reason}: ${meanings[r.reason] || ""}`;
  li.append(time, type, what, msg);
  list.prepend(li);
  while (list.children.length > MAX_RECORDS) list.lastChild.remove();
  applyFilters();
}

function connection(live) {
  const c = document.getElementById("connection");
  c.textContent = live ? "live" : "reconnecting…";
  c.className = live ? "conn-live" : "conn-wait";
}

function start() {
  fetch("reasons").then(r => r.json()).then(list => {
    for (const x of list) meanings[x.reason] = x.meaning;
  }).catch(() => {});
  const st = new EventSource("status/stream" + (only ? "?" + only : ""));
  st.addEventListener("status", e => {
    status = JSON.parse(e.data);
    if (status.projects) { // an agent's overview
      drawProjects(status);
      status = null;
      drawGraph();
      return;
    }
    window.__reconcileUpdates = (window.__reconcileUpdates || 0) + 1;
    updateSummary();
    drawGraph();
    // first load, for the benchmark: navigation start to services drawn
    if (window.__firstDraw === undefined) window.__firstDraw = performance.now();
  });
  st.onopen = () => connection(true);
  st.onerror = () => connection(false);

  let seen = new Set();
  // ?as=record names every record "record" (by default the name is its reason)
  const ev = new EventSource("events?as=record" + (only ? "&" + only : ""));
  ev.onopen = () => {
    // a reconnect replays the recent records: start the list anew
    document.getElementById("timeline").replaceChildren();
    seen = new Set();
  };
  ev.addEventListener("record", e => {
    const r = JSON.parse(e.data);
    const key = r.time + r.reason + (r.container || "");
    if (seen.has(key)) return;
    seen.add(key);
    addRecord(r);
  });

  document.getElementById("filter-service").addEventListener("change", applyFilters);
  document.getElementById("filter-type").addEventListener("change", applyFilters);
  setInterval(tick, 200);
}

start();
