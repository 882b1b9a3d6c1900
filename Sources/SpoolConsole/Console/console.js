// Spool console: one page, hash routing, plain DOM. Reads spoold's JSON API (docs/http-api.md).
// Every text put into the page goes through textContent (the el() helper): no innerHTML.
"use strict";

// ---------------------------------------------------------------------------------------------
// State and small helpers

const TOKEN_KEY = "spool.console.token";

const state = {
  admin: false,        // from /api/status; actions are disabled when false
  page: 0,             // bumped on every route change: timers and polls of an old page stop
  timers: [],          // intervals of the current page
  aborts: [],          // AbortControllers of the current page's requests
};

/** Builds an element: el("a", {href: "#/x", "data-test": "y", onclick: f}, "text", child, …). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "className") node.className = value;
    else if (name === "value") node.value = value;
    else if (name === "checked" || name === "disabled" || name === "selected") node[name] = Boolean(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Appends children: nodes as they are, strings and numbers as text, arrays flattened. */
function append(node, ...children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, ...child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces every child of node. */
function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

const $ = (id) => document.getElementById(id);

function formatBytes(n) {
  if (n === undefined || n === null || n < 0 || Number.isNaN(Number(n))) return "–";
  n = Number(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

function formatRate(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return n >= 10 || n === 0 ? n.toFixed(0) : n.toFixed(1);
}

function formatSeconds(s) {
  if (s === 0) return "0";
  if (s >= 1) return s.toFixed(2) + " s";
  if (s >= 0.001) return (s * 1000).toFixed(s >= 0.01 ? 0 : 1) + " ms";
  return (s * 1e6).toFixed(0) + " µs";
}

/** A retention.ms-like setting: -1 is unlimited, else the largest whole unit. */
function formatMillis(ms) {
  if (ms === undefined || ms === null || ms === "") return "–";
  ms = Number(ms); // settings arrive as strings
  if (ms < 0) return "forever";
  const units = [["d", 86400000], ["h", 3600000], ["min", 60000], ["s", 1000]];
  for (const [name, size] of units) if (ms >= size && ms % size === 0) return ms / size + " " + name;
  return ms + " ms";
}

function formatTime(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Hex dump of base64 bytes: 16 bytes a line, offset first. */
function hexDump(base64) {
  const raw = atob(base64);
  const lines = [];
  for (let at = 0; at < raw.length; at += 16) {
    const bytes = [];
    for (let i = at; i < Math.min(at + 16, raw.length); i++) bytes.push(raw.charCodeAt(i).toString(16).padStart(2, "0"));
    lines.push(at.toString(16).padStart(6, "0") + "  " + bytes.join(" "));
  }
  return lines.join("\n");
}

/** A Bytes object of the API as one line of text (keys, header values). */
function bytesText(bytes) {
  if (bytes === null || bytes === undefined) return null;
  if (typeof bytes.text === "string") return bytes.text;
  return "base64:" + bytes.base64;
}

// ---------------------------------------------------------------------------------------------
// API access

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the API; JSON in and out. Throws ApiError with the server's {"error"} text. */
async function api(path, options = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  const init = { method: options.method || "GET", headers, signal: options.signal };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    setConnection(false);
    throw new ApiError(0, "spoold does not answer (" + error.message + ")");
  }
  setConnection(true);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) {
    showTokenForm(token ? "The token was refused." : null);
    throw new ApiError(401, (body && body.error) || "a token is required");
  }
  if (!response.ok) throw new ApiError(response.status, (body && body.error) || response.status + " " + response.statusText);
  return body;
}

const enc = encodeURIComponent;

function setConnection(up) {
  const node = $("conn-status");
  node.className = up ? "" : "down";
  node.textContent = up ? "" : "spoold does not answer";
}

function showTokenForm(note) {
  const form = $("token-form");
  if (!form.hidden) return;
  form.hidden = false;
  if (note) form.querySelector("label").textContent = note + " Token:";
  $("token-input").focus();
}

function setupTokenForm() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    $("token-form").hidden = true;
    refreshStatus();
    route();
  });
}

/** Reads /api/status for the admin flag (read-only note, disabled actions). */
async function refreshStatus() {
  const status = await api("/api/status");
  setAdmin(Boolean(status.admin));
  return status;
}

function setAdmin(admin) {
  state.admin = admin;
  $("readonly-note").hidden = admin;
  for (const button of document.querySelectorAll("[data-action]")) button.disabled = !admin;
}

/** An action button: disabled (with a title saying why) when the listener is read-only. */
function actionButton(attrs, label) {
  const button = el("button", Object.assign({ type: "button", "data-action": "" }, attrs), label);
  button.disabled = !state.admin;
  if (!state.admin) button.title = "read-only: set http.admin: true";
  return button;
}

function errorBox(error, attrs) {
  if (error.name === "AbortError") return null;
  return el("div", Object.assign({ className: "error", role: "alert" }, attrs), errorText(error));
}

/** The text shown for a failed call, with a hint for the statuses the console knows. */
function errorText(error) {
  const hints = {
    401: "a token is needed: enter it above",
    403: "read-only: set http.admin: true in spoold's configuration",
    404: "not found",
    409: "the group has live members: stop them first (their commits would overwrite the new offsets)",
  };
  const hint = hints[error.status];
  return (error.status ? error.status + ": " : "") + error.message + (hint && !error.message.includes(hint) ? " — " + hint : "");
}

// ---------------------------------------------------------------------------------------------
// Routing: #/overview, #/topics, #/topics/NAME, #/groups, #/groups/NAME, #/sagas[/ID], #/dead-letters

const routes = {
  "overview": overviewPage,
  "topics": (rest, app) => (rest ? topicPage(rest, app) : topicsPage(rest, app)),
  "groups": (rest, app) => (rest ? groupPage(rest, app) : groupsPage(rest, app)),
  "sagas": sagasPage,
  "dead-letters": deadLettersPage,
};

function route() {
  // Stop what the previous page left running.
  state.page++;
  for (const timer of state.timers) clearInterval(timer);
  for (const controller of state.aborts) controller.abort();
  state.timers = [];
  state.aborts = [];

  const hash = location.hash.replace(/^#\/?/, "");
  const slash = hash.indexOf("/");
  const name = slash < 0 ? hash : hash.slice(0, slash);
  let rest = slash < 0 ? "" : hash.slice(slash + 1);
  try { rest = decodeURIComponent(rest); } catch (_) { /* a malformed escape: use it as typed */ }
  const page = routes[name] ? name : "overview";
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.route === page);
  const app = $("app");
  app.dataset.page = page;
  replace(app);
  routes[page](rest, app);
}

/** Runs fn now and every `ms` while the page that started it is shown. */
function every(ms, fn) {
  fn();
  state.timers.push(setInterval(fn, ms));
}

/** An AbortController that route() aborts when the page changes. */
function pageAbort() {
  const controller = new AbortController();
  state.aborts.push(controller);
  return controller;
}

/** True while the page started at `page` is still the one shown. */
const isCurrent = (page) => page === state.page;

function heading(text, ...extra) {
  return el("h1", {}, text, extra);
}

// ---------------------------------------------------------------------------------------------
// Overview: status, refused writes, charts of /api/history

function overviewPage(_rest, app) {
  const banner = el("div", { id: "writes-refused", "data-test": "writes-refused", className: "banner", hidden: true });
  const status = el("section", { id: "status", "data-test": "status" }, "Loading…");
  const charts = el("section", { id: "charts", "data-test": "charts", className: "charts" });
  append(app, heading("Overview"), banner, status, el("h2", {}, "Last 15 minutes"), charts);
  const page = state.page;
  every(5000, async () => {
    try {
      const [s, history] = await Promise.all([api("/api/status"), api("/api/history")]);
      if (!isCurrent(page)) return;
      setAdmin(Boolean(s.admin));
      renderRefused(banner, s.writesRefused || []);
      renderStatus(status, s);
      renderCharts(charts, history);
    } catch (error) {
      if (isCurrent(page)) replace(status, errorBox(error));
    }
  });
}

function renderRefused(banner, refused) {
  banner.hidden = refused.length === 0;
  replace(banner,
    el("strong", {}, refused.length === 1 ? "1 partition refuses writes" : refused.length + " partitions refuse writes"),
    el("ul", {}, refused.map((r) => el("li", { "data-test": "refused-partition" },
      el("a", { href: "#/topics/" + enc(r.topic) }, r.topic + "/" + r.partition), ": " + r.reason))));
}

function renderStatus(section, s) {
  // Fields the broker does not know (yet) are left out of the JSON.
  const total = (s.disk && s.disk.totalBytes) || 0;
  const free = (s.disk && s.disk.freeBytes) || 0;
  const used = total ? total - free : 0;
  const percent = total ? Math.round((used / total) * 100) : 0;
  const item = (label, id, value) => el("div", { className: "fact" }, el("dt", {}, label), el("dd", { id: "status-" + id, "data-test": "status-" + id }, value));
  replace(section,
    el("dl", { className: "facts" },
      item("Version", "version", s.version),
      item("Endpoint", "endpoint", s.endpoint),
      item("Data directory", "data-directory", s.dataDirectory),
      item("fsync", "fsync", s.fsync),
      item("Started", "started", s.startedAt ? formatTime(typeof s.startedAt === "number" ? s.startedAt : Date.parse(s.startedAt)) : "–"),
      item("Ready", "ready", s.ready ? "yes" : "recovering"),
      item("Topics", "topics", s.topics),
      item("Partitions", "partitions", s.partitions),
      item("Connected clients", "clients", s.connectedClients ?? "–"),
      item("Admin actions", "admin", s.admin ? "enabled" : "disabled (read-only)")),
    total === 0 ? el("div", { className: "disk muted", "data-test": "disk" }, "Disk: not measured (yet)") :
      el("div", { className: "disk", "data-test": "disk" },
        el("span", {}, "Disk (data directory's filesystem): " + formatBytes(used) + " used of " + formatBytes(total) + " (" + percent + "%), " + formatBytes(free) + " free"),
        el("div", { className: "bar" + (percent >= 90 ? " full" : ""), id: "disk-bar", "data-test": "disk-bar", title: percent + "% used" },
          el("div", { className: "fill", style: "width:" + percent + "%" }))));
}

function renderCharts(section, history) {
  const samples = (history && history.samples) || [];
  replace(section,
    lineChart("records-chart", "Records per second", samples, [
      { label: "in", key: "recordsInPerSecond", color: "#2b6cb0" },
      { label: "out", key: "recordsOutPerSecond", color: "#d97706" }], formatRate),
    lineChart("bytes-chart", "Bytes per second", samples, [
      { label: "in", key: "bytesInPerSecond", color: "#2b6cb0" },
      { label: "out", key: "bytesOutPerSecond", color: "#d97706" }], (n) => formatBytes(n)),
    lineChart("sync-chart", "Sync latency", samples, [
      { label: "mean", key: "syncMeanSeconds", color: "#2f855a" },
      { label: "max", key: "syncMaxSeconds", color: "#c53030" }], formatSeconds));
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A small line chart (inline SVG): one polyline per series, y from 0 to the largest value. */
function lineChart(id, title, samples, series, format) {
  const width = 380, height = 160, left = 52, right = 8, top = 10, bottom = 22;
  const figure = el("figure", { className: "chart", id, "data-test": id });
  const legend = el("figcaption", {}, el("strong", {}, title),
    series.map((s) => {
      const last = samples.length ? samples[samples.length - 1][s.key] : null;
      return el("span", { className: "legend" }, el("i", { style: "background:" + s.color }), " " + s.label + (last !== null && last !== undefined ? " " + format(last) : ""));
    }));
  figure.appendChild(legend);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title });
  figure.appendChild(chart);
  if (samples.length < 2) {
    chart.appendChild(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, "no samples yet (one every 5 s)"));
    return figure;
  }
  let max = 0;
  for (const sample of samples) for (const s of series) max = Math.max(max, sample[s.key] || 0);
  if (max === 0) max = 1;
  const t0 = samples[0].timestamp, t1 = samples[samples.length - 1].timestamp;
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  // Grid: 0, half, max.
  for (const v of [0, max / 2, max]) {
    chart.appendChild(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
    chart.appendChild(svg("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" }, format(v)));
  }
  const clock = (t) => formatTime(t).slice(11, 16);
  chart.appendChild(svg("text", { x: left, y: height - 6, class: "axis" }, clock(t0)));
  chart.appendChild(svg("text", { x: width - right, y: height - 6, "text-anchor": "end", class: "axis" }, clock(t1)));
  for (const s of series) {
    const points = samples.map((sample) => x(sample.timestamp).toFixed(1) + "," + y(sample[s.key] || 0).toFixed(1)).join(" ");
    chart.appendChild(svg("polyline", { points, fill: "none", stroke: s.color, "stroke-width": 1.5, "data-series": s.key }));
  }
  return figure;
}

// ---------------------------------------------------------------------------------------------
// Topics

function topicsPage(_rest, app) {
  const body = el("div", { id: "topics" }, "Loading…");
  append(app, heading("Topics"), body);
  const page = state.page;
  every(5000, async () => {
    try {
      const { topics } = await api("/api/topics");
      if (isCurrent(page)) replace(body, topicsTable(topics));
    } catch (error) {
      if (isCurrent(page)) replace(body, errorBox(error));
    }
  });
}

/** Per-partition numbers of a topic joined with " · " (one number for one partition). */
function perPartition(topic, key) {
  return topic.partitions.map((p) => String(p[key])).join(" · ");
}

/** retention.bytes (a string, like every setting): -1 is unlimited. */
function retentionBytes(value) {
  if (value === undefined || value === null || value === "") return "–";
  return Number(value) < 0 ? "unlimited" : formatBytes(Number(value));
}

function topicsTable(topics) {
  if (!topics.length) return el("p", { className: "empty", "data-test": "no-topics" }, "No topics yet.");
  const sum = (topic, key) => topic.partitions.reduce((n, p) => n + p[key], 0);
  return el("table", { id: "topics-table", "data-test": "topics-table" },
    el("thead", {}, el("tr", {}, ["Topic", "Partitions", "Log start", "Log end", "Size", "Segments", "Retention", "Retention bytes", "Cleanup"].map((h) => el("th", {}, h)))),
    el("tbody", {}, topics.map((t) => {
      const refused = t.partitions.some((p) => p.writeError);
      return el("tr", { "data-test": "topic-row", "data-topic": t.name, className: refused ? "refused" : "" },
        el("td", {}, el("a", { href: "#/topics/" + enc(t.name), "data-test": "topic-link" }, t.name)),
        el("td", { "data-test": "partitions" }, t.partitions.length),
        el("td", { "data-test": "log-start" }, perPartition(t, "logStartOffset")),
        el("td", { "data-test": "log-end" }, perPartition(t, "logEndOffset")),
        el("td", { "data-test": "size" }, formatBytes(sum(t, "sizeBytes"))),
        el("td", { "data-test": "segments" }, sum(t, "segmentCount")),
        el("td", { "data-test": "retention-ms" }, formatMillis((t.settings || {})["retention.ms"])),
        el("td", { "data-test": "retention-bytes" }, retentionBytes((t.settings || {})["retention.bytes"])),
        el("td", { "data-test": "cleanup-policy" }, (t.settings || {})["cleanup.policy"] || "–"));
    })));
}

function topicPage(name, app) {
  const info = el("div", { id: "topic-info" }, "Loading…");
  append(app, heading("Topic ", el("span", { id: "topic-name", "data-test": "topic-name" }, name)), info);
  const page = state.page;
  api("/api/topics/" + enc(name)).then((topic) => {
    if (!isCurrent(page)) return;
    replace(info, partitionsTable(topic), settingsList(topic), browser(topic));
  }, (error) => {
    if (isCurrent(page)) replace(info, errorBox(error));
  });
}

function partitionsTable(topic) {
  return el("section", {}, el("h2", {}, "Partitions"),
    el("table", { id: "partitions-table", "data-test": "partitions-table" },
      el("thead", {}, el("tr", {}, ["Partition", "Log start", "Log end", "Records", "Size", "Segments", "Writes"].map((h) => el("th", {}, h)))),
      el("tbody", {}, topic.partitions.map((p) => el("tr", { "data-test": "partition-row", "data-partition": p.partition, className: p.writeError ? "refused" : "" },
        el("td", {}, p.partition),
        el("td", { "data-test": "log-start" }, p.logStartOffset),
        el("td", { "data-test": "log-end" }, p.logEndOffset),
        el("td", {}, p.logEndOffset - p.logStartOffset),
        el("td", {}, formatBytes(p.sizeBytes)),
        el("td", {}, p.segmentCount),
        el("td", { "data-test": "write-error" }, p.writeError ? "refused: " + p.writeError : "accepted"))))));
}

function settingsList(topic) {
  const own = topic.topicSettings || {};
  const settings = topic.settings || {};
  return el("details", { id: "topic-settings", "data-test": "topic-settings" },
    el("summary", {}, "Settings (" + Object.keys(own).length + " set on the topic, the rest from the broker)"),
    el("table", { className: "settings" }, el("tbody", {}, Object.keys(settings).sort().map((key) =>
      el("tr", { className: key in own ? "own" : "" }, el("td", {}, key), el("td", {}, String(settings[key])), el("td", {}, key in own ? "topic" : "broker"))))));
}

// --- Message browser -------------------------------------------------------------------------

function browser(topic) {
  const field = (label, input) => el("label", {}, label, input);
  const partition = el("select", { id: "browse-partition", "data-test": "browse-partition" },
    topic.partitions.map((p) => el("option", { value: p.partition }, "partition " + p.partition)));
  const mode = el("select", { id: "browse-mode", "data-test": "browse-mode" },
    el("option", { value: "last" }, "last N"), el("option", { value: "offset" }, "from offset"), el("option", { value: "time" }, "from time"));
  const last = el("input", { id: "browse-last", "data-test": "browse-last", type: "number", min: 1, max: 1000, value: "50" });
  const offset = el("input", { id: "browse-offset", "data-test": "browse-offset", type: "number", min: 0, value: "0" });
  const time = el("input", { id: "browse-time", "data-test": "browse-time", type: "datetime-local", step: 1 });
  const key = el("input", { id: "browse-key", "data-test": "browse-key", type: "text", placeholder: "exact key" });
  const header = el("input", { id: "browse-header", "data-test": "browse-header", type: "text", placeholder: "name=value" });
  const limit = el("input", { id: "browse-limit", "data-test": "browse-limit", type: "number", min: 1, max: 1000, value: "50" });
  const tail = el("input", { id: "live-tail", "data-test": "live-tail", type: "checkbox" });
  const summary = el("p", { id: "browse-summary", "data-test": "browse-summary", className: "muted" });
  const list = el("div", { id: "records", "data-test": "records" });
  const errors = el("div", { id: "browse-error" });
  const lastField = field("N ", last), offsetField = field("offset ", offset), timeField = field("time ", time);

  const showModeFields = () => {
    lastField.hidden = mode.value !== "last";
    offsetField.hidden = mode.value !== "offset";
    timeField.hidden = mode.value !== "time";
  };
  mode.addEventListener("change", showModeFields);
  partition.addEventListener("change", () => load()); // a live tail follows the partition shown
  showModeFields();

  const page = state.page;
  const view = { nextOffset: null, tailing: false, controller: null };

  /** The query string of the current form, with `start` replacing the start fields. */
  const query = (start) => {
    const params = new URLSearchParams({ partition: partition.value });
    for (const [name, value] of Object.entries(start)) params.set(name, value);
    params.set("limit", limit.value || "50");
    if (key.value !== "") params.set("key", key.value);
    if (header.value.trim() !== "") params.set("header", header.value.trim());
    return params.toString();
  };

  const startParams = () => {
    if (mode.value === "offset") return { offset: offset.value || "0" };
    if (mode.value === "time") {
      const ms = time.value ? new Date(time.value).getTime() : NaN; // datetime-local is local time
      if (Number.isNaN(ms)) throw new ApiError(0, "choose a time");
      return { time: String(ms) };
    }
    return { last: last.value || "50" };
  };

  const load = async () => {
    replace(errors);
    stopTail();
    try {
      const answer = await api("/api/topics/" + enc(topic.name) + "/records?" + query(startParams()), { signal: pageAbort().signal });
      if (!isCurrent(page)) return;
      view.nextOffset = answer.nextOffset;
      replace(list, answer.records.length ? answer.records.map(recordView) : el("p", { className: "empty", "data-test": "no-records" }, "No records."));
      setSummary(answer);
      if (tail.checked) startTail();
    } catch (error) {
      if (isCurrent(page)) replace(errors, errorBox(error, { "data-test": "browse-error" }));
    }
  };

  const setSummary = (answer) => {
    const count = list.querySelectorAll("[data-test=record]").length;
    // A read by key goes to the key's partition, whatever the select says.
    const shown = answer.records.length ? answer.records[0].partition : partition.value;
    replace(summary, `${count} records shown; partition ${shown} holds offsets ${answer.logStartOffset}–${answer.logEndOffset - 1} (log end ${answer.logEndOffset}); next offset ${answer.nextOffset}`,
      view.tailing ? el("span", { className: "tailing", "data-test": "tailing" }, " · live tail on") : null);
  };

  // Live tail: long-poll from nextOffset, append what arrives, until unchecked or page left.
  const startTail = async () => {
    if (view.tailing) return;
    view.tailing = true;
    const controller = pageAbort();
    view.controller = controller;
    while (view.tailing && isCurrent(page) && !controller.signal.aborted) {
      try {
        const from = view.nextOffset === null ? { last: "0" } : { offset: String(view.nextOffset) };
        const asked = Date.now();
        const answer = await api("/api/topics/" + enc(topic.name) + "/records?" + query(from) + "&wait=10000", { signal: controller.signal });
        if (!view.tailing || controller.signal.aborted) return;
        const empty = list.querySelector("[data-test=no-records]");
        if (empty && answer.records.length) empty.remove();
        for (const record of answer.records) list.appendChild(recordView(record));
        if (answer.records.length) list.lastChild.scrollIntoView({ block: "nearest" });
        view.nextOffset = answer.nextOffset;
        setSummary(answer);
        replace(errors);
        // A filtered read by key does not long-poll: do not ask again at once when nothing came.
        if (answer.records.length === 0 && Date.now() - asked < 1000) await new Promise((resolve) => setTimeout(resolve, 2000));
      } catch (error) {
        if (error.name === "AbortError" || !isCurrent(page)) return;
        replace(errors, errorBox(error, { "data-test": "browse-error" }));
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  };

  const stopTail = () => {
    view.tailing = false;
    if (view.controller) view.controller.abort();
    view.controller = null;
  };

  tail.addEventListener("change", () => {
    if (tail.checked) startTail();
    else stopTail();
  });

  const form = el("form", { id: "browse-form", "data-test": "browse-form", className: "inline", onsubmit: (e) => { e.preventDefault(); load(); } },
    field("", partition), field("", mode), lastField, offsetField, timeField,
    field("key ", key), field("header ", header), field("limit ", limit),
    el("button", { id: "browse-submit", "data-test": "browse-submit", type: "submit" }, "Load"),
    el("label", { className: "toggle" }, tail, " live tail"));
  load();
  return el("section", { id: "browser" }, el("h2", {}, "Messages"), form, errors, summary, list);
}

/** One record: offset, time, key, headers, value. */
function recordView(record) {
  const headers = record.headers || [];
  return el("article", { className: "record", "data-test": "record", "data-offset": record.offset, "data-partition": record.partition },
    el("div", { className: "record-meta" },
      el("span", { className: "offset", "data-test": "record-offset" }, "#" + record.offset),
      el("time", { "data-test": "record-time", datetime: record.time, title: record.time }, formatTime(record.timestamp)),
      el("span", { className: "key", "data-test": "record-key" }, record.key ? bytesText(record.key) : el("em", {}, "no key")),
      el("span", { className: "muted" }, formatBytes(record.value ? record.value.size : 0))),
    headers.length ? el("ul", { className: "headers", "data-test": "record-headers" },
      headers.map((h) => el("li", { "data-test": "record-header" }, el("span", { className: "hname" }, h.name), "=", bytesText(h.value)))) : null,
    valueView(record.value));
}

/** JSON pretty-printed, else text, else hex with a base64 toggle. */
function valueView(value) {
  if (!value) return el("pre", { className: "value", "data-test": "value-empty" }, "");
  if (value.json !== undefined) return el("pre", { className: "value json", "data-test": "value-json" }, JSON.stringify(value.json, null, 2));
  if (typeof value.text === "string") return el("pre", { className: "value text", "data-test": "value-text" }, value.text);
  const pre = el("pre", { className: "value binary", "data-test": "value-binary", "data-format": "hex" }, hexDump(value.base64));
  const toggle = el("button", { type: "button", className: "small", "data-test": "binary-toggle" }, "show base64");
  toggle.addEventListener("click", () => {
    const hex = pre.dataset.format === "hex";
    pre.dataset.format = hex ? "base64" : "hex";
    pre.textContent = hex ? value.base64 : hexDump(value.base64);
    toggle.textContent = hex ? "show hex" : "show base64";
  });
  return el("div", { className: "binary-value" }, el("span", { className: "muted" }, "binary " + value.size + " bytes "), toggle, pre);
}

// ---------------------------------------------------------------------------------------------
// Consumer groups

function groupsPage(_rest, app) {
  const body = el("div", { id: "groups" }, "Loading…");
  append(app, heading("Consumer groups"), body);
  const page = state.page;
  every(5000, async () => {
    try {
      const { groups } = await api("/api/groups");
      if (!isCurrent(page)) return;
      replace(body, groups.length === 0 ? el("p", { className: "empty", "data-test": "no-groups" }, "No consumer groups.") :
        el("table", { id: "groups-table", "data-test": "groups-table" },
          el("thead", {}, el("tr", {}, ["Group", "State", "Members"].map((h) => el("th", {}, h)))),
          el("tbody", {}, groups.map((g) => el("tr", { "data-test": "group-row", "data-group": g.name },
            el("td", {}, el("a", { href: "#/groups/" + enc(g.name), "data-test": "group-link" }, g.name)),
            el("td", { "data-test": "group-state" }, g.state),
            el("td", { "data-test": "group-members" }, g.memberCount))))));
    } catch (error) {
      if (isCurrent(page)) replace(body, errorBox(error));
    }
  });
}

function groupPage(name, app) {
  const summary = el("p", { id: "group-summary", "data-test": "group-summary" }, "Loading…");
  const members = el("div", { id: "group-members", "data-test": "group-members" });
  const partitions = el("div", { id: "group-partitions" });
  append(app, heading("Group ", el("span", { id: "group-name", "data-test": "group-name" }, name)),
    summary, el("h2", {}, "Members"), members, el("h2", {}, "Partitions"), partitions, resetSection(name));
  const page = state.page;
  every(2000, async () => {
    try {
      const group = await api("/api/groups/" + enc(name));
      if (!isCurrent(page)) return;
      renderGroup(group, summary, members, partitions);
    } catch (error) {
      if (isCurrent(page)) replace(summary, errorBox(error));
    }
  });
}

function renderGroup(group, summary, members, partitions) {
  const lag = group.partitions.reduce((n, p) => n + Math.max(0, p.lag), 0);
  replace(summary, "State ", el("strong", { "data-test": "group-state" }, group.state),
    ", generation " + group.generation + ", ",
    el("span", { "data-test": "group-member-count" }, group.members.length), " members, total lag ",
    el("strong", { "data-test": "group-total-lag" }, lag));
  replace(members, group.members.length === 0 ? el("p", { className: "empty", "data-test": "no-members" }, "No live members.") :
    el("ul", {}, group.members.map((m) => el("li", { "data-test": "member" }, el("code", {}, m.memberID), ": ",
      m.partitions.map((p) => p.topic + "/" + p.partition).join(", ") || "no partitions"))));
  replace(partitions, el("table", { id: "group-partitions-table", "data-test": "group-partitions" },
    el("thead", {}, el("tr", {}, ["Topic", "Partition", "Committed", "Log end", "Lag", "Owner"].map((h) => el("th", {}, h)))),
    el("tbody", {}, group.partitions.map((p) => el("tr", { "data-test": "group-partition", "data-topic": p.topic, "data-partition": p.partition, className: p.lag > 0 ? "lagging" : "" },
      el("td", {}, el("a", { href: "#/topics/" + enc(p.topic) }, p.topic)),
      el("td", {}, p.partition),
      el("td", { "data-test": "committed" }, p.committedOffset < 0 ? "none" : p.committedOffset),
      el("td", { "data-test": "log-end" }, p.logEndOffset),
      el("td", { "data-test": "lag" }, p.lag),
      el("td", { "data-test": "owner" }, p.owner || "–"))))));
  // Offer the group's topics in the reset form.
  const list = $("reset-topics");
  if (list) replace(list, [...new Set(group.partitions.map((p) => p.topic))].map((t) => el("option", { value: t })));
}

/** The reset form: a dry run first, its plan, then Apply (confirmed) with execute: true. */
function resetSection(group) {
  const topic = el("input", { id: "reset-topic", "data-test": "reset-topic", list: "reset-topics", required: true, placeholder: "topic" });
  const partition = el("input", { id: "reset-partition", "data-test": "reset-partition", type: "number", min: 0, placeholder: "all" });
  const to = el("select", { id: "reset-to", "data-test": "reset-to" },
    ["earliest", "latest", "offset", "time", "shift"].map((v) => el("option", { value: v }, v)));
  const value = el("input", { id: "reset-value", "data-test": "reset-value", type: "text", placeholder: "offset / ISO time / ±N" });
  const output = el("div", { id: "reset-output", "data-test": "reset-output" });
  const valueNeeded = () => { value.disabled = to.value === "earliest" || to.value === "latest"; };
  to.addEventListener("change", valueNeeded);
  valueNeeded();

  const body = () => {
    const request = { topic: topic.value.trim(), to: to.value };
    if (partition.value !== "") request.partition = Number(partition.value);
    if (!value.disabled) {
      const text = value.value.trim();
      if (text === "") throw new ApiError(0, "a value is needed for " + to.value);
      if (to.value === "time") {
        // ms, an ISO time, or a datetime-local style time without a zone (taken as local time).
        if (/^-?\d+$/.test(text)) request.value = Number(text);
        else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)) request.value = new Date(text).toISOString();
        else request.value = text;
      } else {
        if (!/^[-+]?\d+$/.test(text)) throw new ApiError(0, to.value + " needs a whole number");
        request.value = Number(text);
      }
    }
    return request;
  };

  const dryRun = async (event) => {
    event.preventDefault();
    replace(output, el("p", { className: "muted" }, "Planning…"));
    let request;
    try {
      request = body();
      const answer = await api("/api/groups/" + enc(group) + "/reset", { method: "POST", body: Object.assign({}, request, { execute: false }) });
      showPlan(request, answer);
    } catch (error) {
      replace(output, errorBox(error, { "data-test": "reset-error" }));
    }
  };

  const showPlan = (request, answer) => {
    const apply = actionButton({ id: "reset-apply", "data-test": "reset-apply" }, "Apply");
    apply.addEventListener("click", async () => {
      const what = request.topic + (request.partition === undefined ? " (all partitions)" : "/" + request.partition);
      if (!window.confirm(`Move group ${group}'s committed offsets on ${what} as planned (${answer.plan.length} partitions)?`)) return;
      apply.disabled = true;
      try {
        const done = await api("/api/groups/" + enc(group) + "/reset", { method: "POST", body: Object.assign({}, request, { execute: true }) });
        replace(output, planTable(done.plan),
          el("p", { className: "ok", "data-test": "reset-result" }, done.executed ? "Applied: the group's committed offsets moved." : "Not executed."));
      } catch (error) {
        apply.disabled = !state.admin;
        output.appendChild(errorBox(error, { "data-test": "reset-error" }));
      }
    });
    replace(output, el("p", {}, "Dry run: nothing changed yet."), planTable(answer.plan), apply,
      state.admin ? null : el("span", { className: "muted" }, " read-only: set http.admin: true"));
  };

  return el("section", { id: "reset" }, el("h2", {}, "Reset offsets"),
    el("datalist", { id: "reset-topics" }),
    el("form", { id: "reset-form", "data-test": "reset-form", className: "inline", onsubmit: dryRun },
      el("label", {}, "topic ", topic), el("label", {}, "partition ", partition), el("label", {}, "to ", to), el("label", {}, "value ", value),
      el("button", { id: "reset-dry-run", "data-test": "reset-dry-run", type: "submit" }, "Plan (dry run)")),
    output);
}

function planTable(plan) {
  return el("table", { id: "reset-plan", "data-test": "reset-plan" },
    el("thead", {}, el("tr", {}, ["Topic", "Partition", "Committed", "New offset"].map((h) => el("th", {}, h)))),
    el("tbody", {}, plan.map((p) => el("tr", { "data-test": "plan-row", "data-partition": p.partition },
      el("td", {}, p.topic), el("td", {}, p.partition),
      el("td", { "data-test": "plan-committed" }, p.committedOffset < 0 ? "none" : p.committedOffset),
      el("td", { "data-test": "plan-new" }, p.newOffset)))));
}

// ---------------------------------------------------------------------------------------------
// Sagas

function sagasPage(rest, app) {
  const input = el("input", { id: "saga-id", "data-test": "saga-id", type: "text", placeholder: "correlation id", size: 40, value: rest || "" });
  const output = el("div", { id: "saga-output", "data-test": "saga-output" });
  const form = el("form", { id: "saga-form", "data-test": "saga-form", className: "inline", onsubmit: (e) => {
    e.preventDefault();
    const id = input.value.trim();
    if (!id) return;
    // The id goes into the address (shareable); when it is already there, trace again.
    const hash = "#/sagas/" + enc(id);
    if (location.hash === hash) trace(id, output);
    else location.hash = hash;
  } }, el("label", {}, "Correlation id ", input), el("button", { id: "saga-trace", "data-test": "saga-trace", type: "submit" }, "Trace"));
  append(app, heading("Saga trace"), form, output);
  if (rest) trace(rest, output);
}

/** What `spool saga trace` prints in its mark column, when the API gives none. */
function stepMark(step) {
  if (step.mark) return step.mark;
  if (step.deadLetter) return "DEAD-LETTERED" + (step.deadLetter.attempts ? " after " + step.deadLetter.attempts + " attempts" : "") + (step.deadLetter.error ? ": " + step.deadLetter.error : "");
  return { failure: "FAILED", compensation: "COMPENSATION", timeout: "TIMEOUT" }[step.role] || "";
}

async function trace(id, output) {
  const page = state.page;
  replace(output, el("p", { className: "muted" }, "Tracing…"));
  try {
    const answer = await api("/api/sagas/" + enc(id));
    if (!isCurrent(page)) return;
    const steps = answer.steps || [];
    const topics = new Set(steps.map((s) => s.topic));
    replace(output,
      el("p", { "data-test": "saga-summary" }, "Saga " + answer.correlationID + ": " + steps.length + " events in " + topics.size + " topics"),
      el("table", { id: "saga-steps", "data-test": "saga-steps" },
        el("thead", {}, el("tr", {}, ["Time", "Gap", "Topic", "Partition/offset", "Event type", "Source", "Mark"].map((h) => el("th", {}, h)))),
        el("tbody", {}, steps.map((s) => {
          const bad = s.role === "failure" || s.deadLetter || s.problem;
          return el("tr", { "data-test": "saga-step", "data-event-type": s.eventType, className: [bad ? "failure" : "", s.role === "compensation" ? "compensation" : ""].join(" ").trim() },
            el("td", { title: s.time }, formatTime(s.timeMilliseconds)),
            el("td", {}, "+" + (s.gapMilliseconds / 1000).toFixed(3) + " s"),
            el("td", {}, el("a", { href: "#/topics/" + enc(s.topic) }, s.topic)),
            el("td", {}, s.partition + "/" + s.offset),
            el("td", { "data-test": "step-type" }, s.eventType || "–"),
            el("td", {}, s.source || "–"),
            el("td", { "data-test": "step-mark" }, stepMark(s), s.problem && !stepMark(s).includes(s.problem) ? el("div", { className: "problem" }, s.problem) : null));
        }))));
  } catch (error) {
    if (isCurrent(page)) replace(output, errorBox(error, { "data-test": "saga-error" }));
  }
}

// ---------------------------------------------------------------------------------------------
// Dead letters

function deadLettersPage(_rest, app) {
  const body = el("div", { id: "dead-letters" }, "Loading…");
  const result = el("div", { id: "dlq-result", "data-test": "dlq-result" });
  append(app, heading("Dead letters"), result, body);
  const page = state.page;
  const load = async () => {
    try {
      const { topics } = await api("/api/dead-letters");
      if (!isCurrent(page)) return;
      replace(body, topics.length === 0 ? el("p", { className: "empty", "data-test": "no-dead-letters" }, "No dead-letter topics (names ending in .dlq).") :
        el("table", { id: "dlq-table", "data-test": "dlq-table" },
          el("thead", {}, el("tr", {}, ["Topic", "Origin", "Records", "Partitions", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, topics.map((t) => el("tr", { "data-test": "dlq-row", "data-topic": t.name },
            el("td", {}, el("a", { href: "#/topics/" + enc(t.name) }, t.name)),
            el("td", {}, el("a", { href: "#/topics/" + enc(t.origin) }, t.origin)),
            el("td", { "data-test": "dlq-records" }, t.records),
            el("td", {}, t.partitions),
            el("td", {}, replayButton(t, result, load)))))));
    } catch (error) {
      if (isCurrent(page)) replace(body, errorBox(error));
    }
  };
  load();
}

function replayButton(topic, result, reload) {
  const button = actionButton({ "data-test": "dlq-replay" }, "Replay to " + topic.origin);
  button.addEventListener("click", async () => {
    if (!window.confirm(`Copy the ${topic.records} records of ${topic.name} to ${topic.origin} (without their spool-dlq-* headers)?`)) return;
    button.disabled = true;
    replace(result, el("p", { className: "muted" }, "Replaying…"));
    try {
      const answer = await api("/api/dead-letters/" + enc(topic.name) + "/replay", { method: "POST", body: { to: topic.origin } });
      replace(result, el("p", { className: "ok", "data-test": "dlq-copied" }, `Copied ${answer.copied} records from ${topic.name} to ${answer.to}.`));
      reload();
    } catch (error) {
      replace(result, errorBox(error, { "data-test": "dlq-error" }));
      button.disabled = !state.admin;
    }
  });
  return button;
}

// ---------------------------------------------------------------------------------------------
// Start

function start() {
  setupTokenForm();
  window.addEventListener("hashchange", route);
  // The admin flag first, so that action buttons start in the right state; the page renders anyway.
  refreshStatus().catch(() => {}).finally(route);
}

start();
