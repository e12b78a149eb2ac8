// The Seed Scheduler console: every figure comes from the JSON API (the session cookie
// stands in for the token). Text from the API is only ever set as textContent: endpoints,
// errors and payloads are the tenants' input.
"use strict";

const state = { user: null, view: null, timer: null, charts: {}, deadFilter: {}, deadRows: [] };

async function api(path, options = {}) {
  const init = { method: options.method || "GET", credentials: "same-origin", headers: { "X-Scheduler-Console": "1" } };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { detail: text }; }
  if (response.status === 401 && path !== "/console/session/") { showSignIn(); throw new Error("signed out"); }
  if (!response.ok) {
    const detail = body && (body.detail || JSON.stringify(body));
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    if (cell instanceof Node) { const td = document.createElement("td"); td.appendChild(cell); tr.appendChild(td); }
    else if (cell && typeof cell === "object") { tr.appendChild(el("td", cell.text, cell.attrs || {})); }
    else tr.appendChild(el("td", cell === null || cell === undefined ? "" : cell));
  }
  return tr;
}

function fill(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

function showSignIn() {
  state.user = null;
  clearInterval(state.timer);
  for (const view of document.querySelectorAll("main > [id^=view-]")) view.hidden = view.id !== "view-signin";
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
}

async function signIn(event) {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  try {
    state.user = await api("/console/session/", { method: "POST", body: { token } });
    document.getElementById("token").value = "";
    document.getElementById("signin-error").textContent = "";
    start();
  } catch (error) {
    document.getElementById("signin-error").textContent = "Sign-in failed: " + error.message;
  }
}

async function signOut() {
  await api("/console/session/", { method: "DELETE" });
  showSignIn();
}

function start() {
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("who").textContent = `${state.user.email}${state.user.is_admin ? " (admin)" : ""}`;
  route();
}

function route() {
  if (!state.user) return;
  const view = (location.hash || "#overview").slice(1).split("/")[0];
  const known = ["overview", "dead", "schedules", "endpoints"];
  state.view = known.includes(view) ? view : "overview";
  for (const section of document.querySelectorAll("main > [id^=view-]")) section.hidden = section.id !== `view-${state.view}`;
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.view === state.view);
  clearInterval(state.timer);
  const refresh = { overview: loadOverview, dead: loadDead, schedules: loadSchedules, endpoints: () => Promise.all([loadEndpoints(), loadReceivers()]) }[state.view];
  refresh().catch(report);
  if (state.view === "overview" || state.view === "endpoints") state.timer = setInterval(() => refresh().catch(report), 3000);
}

function report(error) {
  if (error.message === "signed out") return;
  const box = document.getElementById("message");
  box.textContent = error.message;
  box.className = "bad";
}

// MARK: Overview

const colors = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];
const outcomeColors = { delivered: "#2b8a3e", queued: "#868e96", retrying: "#e67700", dead: "#c92a2a", cancelled: "#adb5bd", purged: "#495057" };

function chart(id, config) {
  if (typeof Chart === "undefined") return null;
  if (!state.charts[id]) state.charts[id] = new Chart(document.getElementById(id), config);
  return state.charts[id];
}

async function loadOverview() {
  const data = await api("/api/v1/console/overview/?minutes=60");
  const health = document.getElementById("health");
  health.replaceChildren(
    el("span", `PostgreSQL: ${data.health.database}`, { class: data.health.database === "Accessible" ? "good" : "bad", id: "health-database" }),
    el("span", " · "),
    el("span", `RabbitMQ: ${data.health.broker}`, { class: data.health.broker === "Accessible" ? "good" : "bad", id: "health-broker" }),
    el("span", ` · checked ${when(data.health.checked_at)}`));
  const late = data.lateness;
  document.getElementById("lateness").textContent = late.deliveries === 0
    ? "No first POSTs in the last hour."
    : `Due time to first POST, last hour: p50 ${late.p50_ms} ms, p99 ${late.p99_ms} ms (${late.deliveries} deliveries).`;
  document.getElementById("beats").replaceChildren(...(data.beats || []).map(b => el("div",
    `Beat ${b.beat}: last round ${Math.max(0, Math.round((Date.now() - Date.parse(b.last_round_at)) / 1000))} s ago, took ${b.round_ms} ms; lag ${b.lag_ms} ms.`,
    { class: "beat" })));
  if (data.beats && data.beats.length === 0) document.getElementById("beats").textContent = "No beat heard from in the last 10 minutes.";
  const quota = await api("/api/v1/quota/");
  document.getElementById("quota").textContent = `Your quotas: schedules ${quota.schedules.used} of ${quota.schedules.limit}`
    + ` · webhooks ${quota.hooks.used} of ${quota.hooks.limit}`
    + ` · created this minute ${quota.creates_per_minute.used} of ${quota.creates_per_minute.limit}`
    + ` · deliveries a second ${quota.deliveries_per_second.used} of ${quota.deliveries_per_second.limit}`
    + (quota.min_interval.limit ? ` · intervals of ${quota.min_interval.limit} or more` : "") + ".";
  document.getElementById("unacked").textContent = data.unacked_estimate === undefined ? ""
    : `Jobs taken by workers and not yet acknowledged (estimated from the records): ${data.unacked_estimate}.`;
  document.getElementById("queues-section").hidden = !data.queues;
  if (data.queues) {
    fill("queues", data.queues.map(q => row([q.queue, { text: q.ready ?? "not declared", attrs: { class: "num", "data-queue": q.queue, "data-field": "ready" } },
      { text: q.unacked ?? "", attrs: { class: "num", "data-field": "unacked" } },
      { text: q.consumers ?? "", attrs: { class: "num" } }])));
    document.getElementById("queues-at").textContent = `(${new Date().toLocaleTimeString()})`;
    const byQueue = {};
    for (const s of data.samples) (byQueue[s.queue] = byQueue[s.queue] || []).push({ x: Date.parse(s.at), y: s.ready });
    const shown = Object.keys(byQueue).filter(q => q === "scheduler.deliveries" || byQueue[q].some(p => p.y > 0));
    const datasets = shown.map((q, i) => ({ label: q, data: byQueue[q], borderColor: colors[i % colors.length], pointRadius: 0, tension: 0.1 }));
    const depth = chart("depth-chart", { type: "line", data: { datasets }, options: { animation: false, maintainAspectRatio: false,
      scales: { x: { type: "linear", ticks: { callback: v => new Date(v).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) } }, y: { beginAtZero: true } } } });
    if (depth) { depth.data.datasets = datasets; depth.update(); }
  }
  const minutes = [...new Set(data.deliveries_by_minute.map(c => c.minute))].sort();
  const states = [...new Set(data.deliveries_by_minute.map(c => c.state))].sort();
  const datasets = states.map(name => ({ label: name, backgroundColor: outcomeColors[name] || "#999",
    data: minutes.map(m => (data.deliveries_by_minute.find(c => c.minute === m && c.state === name) || { count: 0 }).count) }));
  const labels = minutes.map(m => new Date(m).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  const outcomes = chart("outcome-chart", { type: "bar", data: { labels, datasets }, options: { animation: false, maintainAspectRatio: false,
    scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
  if (outcomes) { outcomes.data.labels = labels; outcomes.data.datasets = datasets; outcomes.update(); }
}

// MARK: Dead letters

function formFields(form) {
  const fields = {};
  for (const [key, value] of new FormData(form).entries()) if (String(value).trim() !== "") fields[key] = String(value).trim();
  return fields;
}

async function loadDead() {
  state.deadFilter = formFields(document.getElementById("dead-filters"));
  const query = new URLSearchParams(state.deadFilter).toString();
  const data = await api(`/api/v1/console/dead-letters/?${query}`);
  state.deadRows = data.results;
  document.getElementById("dead-count").textContent = `${data.count} matching`;
  document.getElementById("dead-count").dataset.count = data.count;
  fill("dead", data.results.map(letter => {
    const box = el("input", null, { type: "checkbox", "data-id": letter.id });
    const tr = row([box, when(letter.failed_at), letter.endpoint, letter.last_status, letter.last_error, { text: letter.attempts, attrs: { class: "num" } }, letter.owner]);
    tr.addEventListener("click", event => { if (event.target !== box) showDead(letter); });
    return tr;
  }));
}

function showDead(letter) {
  document.getElementById("dead-detail").hidden = false;
  document.getElementById("dead-detail-body").textContent = JSON.stringify(letter, null, 2);
}

function say(text, good = true) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = good ? "good" : "bad";
}

async function redrive(ids) {
  const body = { filter: state.deadFilter };
  if (ids) body.ids = ids;
  const preview = await api("/api/v1/console/dead-letters/redrive/", { method: "POST", body: { ...body, dry_run: true } });
  if (preview.matched === 0) { say("Nothing to re-drive."); return; }
  if (!confirm(`Re-drive ${preview.matched} dead letter(s)? They go back to the delivery queue with fresh attempts.`)) return;
  say(`Re-driving ${preview.matched}...`);
  const done = await whileWatching(api("/api/v1/console/dead-letters/redrive/", { method: "POST", body }), "Re-driven");
  say(`Re-driven: ${done.moved} of ${done.matched}.`);
  await loadDead();
}

// Shows how far a re-drive or purge has got (every half second) until `request` answers.
async function whileWatching(request, verb) {
  let finished = false;
  const watch = (async () => {
    while (!finished) {
      await new Promise(resolve => setTimeout(resolve, 500));
      if (finished) break;
      const progress = await api("/api/v1/console/dead-letters/progress/").catch(() => null);
      if (!finished && progress && progress.running) say(`${verb} ${progress.done} of ${progress.matched} so far...`);
    }
  })();
  try { return await request; } finally { finished = true; await watch; }
}

async function purge() {
  const preview = await api("/api/v1/console/dead-letters/purge/", { method: "POST", body: { filter: state.deadFilter, dry_run: true } });
  if (preview.matched === 0) { say("Nothing to purge."); return; }
  if (!confirm(`Purge ${preview.matched} dead letter(s) for good? This cannot be undone.`)) return;
  const done = await whileWatching(api("/api/v1/console/dead-letters/purge/", { method: "POST", body: { filter: state.deadFilter, confirm: true } }), "Purged");
  say(`Purged ${done.purged} of ${done.matched}.`);
  await loadDead();
}

// MARK: Schedules

function inWords(s) {
  if (s.cron_definition) return `cron "${s.cron_definition}", ${s.timezone}`;
  if (s.interval_definition) return `every ${s.interval_definition}`;
  return `once, at ${when(s.next_send_at)}`;
}

async function loadSchedules() {
  const fields = formFields(document.getElementById("schedule-filters"));
  const query = new URLSearchParams({ ...fields, limit: "100" }).toString();
  const data = await api(`/api/v1/schedule/?${query}`);
  document.getElementById("schedule-count").textContent = `${data.count} schedules`;
  document.getElementById("schedule-count").dataset.count = data.count;
  fill("schedules", data.results.map(s => {
    const toggle = el("button", s.enabled ? "Disable" : "Enable", { "data-id": s.id });
    toggle.addEventListener("click", async () => {
      await api(`/api/v1/schedule/${s.id}/`, { method: "PATCH", body: { enabled: !s.enabled } }).catch(report);
      await loadSchedules();
    });
    const link = el("a", s.id.slice(0, 8), { href: `#schedules/${s.id}` });
    link.addEventListener("click", event => { event.preventDefault(); showSchedule(s).catch(report); });
    return row([link, inWords(s), s.endpoint, when(s.next_send_at), s.enabled ? "enabled" : `disabled${s.disabled_reason ? ": " + s.disabled_reason : ""}`, toggle]);
  }));
}

// The controls a schedule has beyond the original's fields, in a line; the defaults say nothing.
function controls(s) {
  const parts = [];
  if (!s.enabled) parts.push(`paused${s.paused_at ? " " + when(s.paused_at) : ""}${s.paused_note ? ": " + s.paused_note : ""}`);
  if (s.start_at) parts.push(`from ${when(s.start_at)}`);
  if (s.end_at) parts.push(`until ${when(s.end_at)}`);
  if (s.catchup_window !== null && s.catchup_window !== undefined) parts.push(`catch-up window ${s.catchup_window} s`);
  if (s.overlap && s.overlap !== "allow") parts.push(`overlap: ${s.overlap.replace("_", " ")}`);
  if (s.jitter) parts.push(`jitter ${s.jitter} s`);
  if (s.dst_gap && s.dst_gap !== "skip") parts.push(`skipped local times: ${s.dst_gap}`);
  if (s.dst_overlap && s.dst_overlap !== "first") parts.push(`repeated local times: ${s.dst_overlap}`);
  return parts.join(" · ");
}

// What a history entry changed, in a line: each field from what to what.
function changed(changes) {
  return Object.entries(changes || {}).map(([field, change]) => {
    if (change === null || typeof change !== "object") return `${field}: ${JSON.stringify(change)}`;
    if (change.changed) return `${field} changed`;
    return `${field}: ${JSON.stringify(change.from)} → ${JSON.stringify(change.to)}`;
  }).join("; ");
}

async function showSchedule(s) {
  document.getElementById("schedule-detail").hidden = false;
  document.getElementById("schedule-detail-id").textContent = s.id;
  const fresh = await api(`/api/v1/schedule/${s.id}/`);
  const runs = await api(`/api/v1/schedule/${s.id}/runs/?count=10`);
  document.getElementById("schedule-detail-words").textContent = `${runs.description}; POST to ${fresh.endpoint}`;
  document.getElementById("schedule-controls").textContent = controls(fresh);
  const runNow = document.getElementById("schedule-run-now");
  runNow.onclick = async () => {
    try {
      const delivery = await api(`/api/v1/schedule/${s.id}/trigger/`, { method: "POST" });
      say(`Queued delivery ${delivery.id.slice(0, 8)} at once.`, true);
    } catch (error) { report(error); }
    await showSchedule(s).catch(report);
  };
  const dst = { shifted: "its time is skipped by the clock: runs when it jumps", first: "first of a repeated hour", second: "second of a repeated hour" };
  fill("schedule-runs", runs.runs.map(r => row([r.local,
    [r.offset_changed ? "UTC offset changes (daylight saving)" : "", dst[r.dst] || ""].filter(Boolean).join("; ")])));
  document.getElementById("schedule-runs-none").hidden = runs.runs.length > 0;
  const data = await api(`/api/v1/schedule/${s.id}/deliveries/?limit=50`);
  fill("schedule-deliveries", data.results.map(d => row([when(d.scheduled_for), d.state, d.origin, { text: d.attempts, attrs: { class: "num" } }, d.last_status,
    { text: d.latency_ms ?? "", attrs: { class: "num" } }, d.last_error])));
  const history = await api(`/api/v1/schedule/${s.id}/history/?limit=50`);
  fill("schedule-history", history.results.map(h => row([when(h.at), h.action, h.by ? h.by.replace(/.*\/user\/(\d+)\/$/, "user $1") : "the service", changed(h.changes)])));
}

// MARK: Endpoints

async function loadEndpoints() {
  const data = await api("/api/v1/console/endpoints/");
  const day = Object.fromEntries(data.day.map(e => [e.host, e]));
  const hosts = [...new Set([...data.hour.map(e => e.host), ...data.day.map(e => e.host)])];
  const hour = Object.fromEntries(data.hour.map(e => [e.host, e]));
  fill("endpoints", hosts.map(host => {
    const h = hour[host] || { deliveries: 0, dead: 0 }, d = day[host] || { deliveries: 0, dead: 0 };
    const rate = h.success_rate === null || h.success_rate === undefined ? "" : `${Math.round(h.success_rate * 100)}%`;
    return row([host, { text: h.deliveries, attrs: { class: "num" } }, { text: rate, attrs: { class: "num " + (h.success_rate < 0.9 ? "bad" : "good") } },
      { text: h.dead, attrs: { class: "num" } }, { text: h.latency_p50_ms === null || h.latency_p50_ms === undefined ? "" : Math.round(h.latency_p50_ms), attrs: { class: "num" } },
      { text: d.deliveries, attrs: { class: "num" } }, { text: d.dead, attrs: { class: "num" } }, (h.last_error || d.last_error || "")]);
  }));
}

// MARK: Receivers (admins)

async function loadReceivers() {
  const section = document.getElementById("receivers-section");
  section.hidden = !state.user.is_admin;
  if (!state.user.is_admin) return;
  const data = await api("/api/v1/console/receivers/");
  fill("receivers", data.results.map(r => {
    const actions = el("span");
    for (const action of ["open", "close", "reset"]) {
      const button = el("button", action, { type: "button", "data-action": action });
      button.addEventListener("click", () => receiverAction({ receiver: r.receiver, action }).catch(report));
      actions.appendChild(button);
    }
    const edit = el("button", "limits…", { type: "button" });
    edit.addEventListener("click", () => {
      document.getElementById("limits-receiver").value = r.receiver;
      document.getElementById("limits-concurrency").value = r.limits.concurrency ?? "";
      document.getElementById("limits-rate").value = r.limits.rate ?? "";
      document.getElementById("limits-burst").value = r.limits.burst ?? "";
    });
    actions.appendChild(edit);
    const set = [r.limits.concurrency === null ? null : `concurrency ${r.limits.concurrency}`,
      r.limits.rate === null ? null : `${r.limits.rate}/s burst ${r.limits.burst}`].filter(x => x).join(", ");
    return row([r.receiver, { text: r.state + (r.held_open ? " (by hand)" : ""), attrs: { class: r.state === "closed" ? "good" : "bad" } },
      { text: Math.round(r.concurrency * 10) / 10, attrs: { class: "num" } }, { text: r.in_flight, attrs: { class: "num" } },
      { text: r.waiting, attrs: { class: "num" } },
      { text: r.success_rate === null ? "" : `${Math.round(r.success_rate * 100)}%`, attrs: { class: "num" } },
      { text: r.latency_ms === null ? "" : Math.round(r.latency_ms), attrs: { class: "num" } }, set || "adaptive", actions]);
  }));
}

async function receiverAction(body) {
  const answer = await api("/api/v1/console/receivers/", { method: "POST", body });
  say(`${answer.receiver}: ${answer.action}${answer.action === "set" ? ` (${answer.limits})` : ""}; workers apply it within a few seconds.`, true);
  await loadReceivers();
}

function setLimits(event) {
  event.preventDefault();
  const number = id => { const text = document.getElementById(id).value.trim(); return text === "" ? null : Number(text); };
  receiverAction({
    receiver: document.getElementById("limits-receiver").value.trim(), action: "set",
    concurrency: number("limits-concurrency"), rate: number("limits-rate"), burst: number("limits-burst"),
  }).catch(report);
}

// MARK: Start

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("signin-form").addEventListener("submit", signIn);
  document.getElementById("signout").addEventListener("click", () => signOut().catch(report));
  document.getElementById("dead-filters").addEventListener("submit", event => { event.preventDefault(); loadDead().catch(report); });
  document.getElementById("schedule-filters").addEventListener("submit", event => { event.preventDefault(); loadSchedules().catch(report); });
  document.getElementById("redrive-matching").addEventListener("click", () => redrive(null).catch(report));
  document.getElementById("redrive-selected").addEventListener("click", () => {
    const ids = [...document.querySelectorAll("#dead tbody input:checked")].map(box => box.dataset.id);
    if (ids.length === 0) { say("Select dead letters first.", false); return; }
    redrive(ids).catch(report);
  });
  document.getElementById("purge-matching").addEventListener("click", () => purge().catch(report));
  document.getElementById("receiver-limits").addEventListener("submit", setLimits);
  window.addEventListener("hashchange", route);
  try {
    state.user = await api("/api/v1/console/whoami/");
    start();
  } catch (error) {
    showSignIn();
  }
});
