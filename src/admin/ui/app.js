// The tagcache dashboard: sign-in, then a poll of /stats, /metrics, /health
// and /stats/workspaces every two seconds, drawn as an overview, a table per
// route and the top workspaces. Rates and "last minute" figures are the
// differences between polls, so they need no server-side state.

import { call, token, keepToken, forgetToken } from "./api.js";
import { $, el, fill, setText, count, rate, percent, bytes, latency, uptime } from "./dom.js";
import { parse, sum, sumBy, buckets, bucketDelta, quantile } from "./prom.js";
import { initForms, loadSettings, probeWarm } from "./forms.js";

const POLL_MS = 2000;
const WINDOW_MS = 60_000;
const CHART_POINTS = 90;
const STATUSES = ["HIT", "MISS", "BYPASS", "STALE", "EXPIRED", "REVALIDATED"];

let timer = null;
let polling = false;
let polls = [];
let chart = [];
let workspacesAbsent = false;
let routesForSettings = "";

// --- Sign-in -----------------------------------------------------------------

function showLogin(message) {
  forgetToken();
  clearTimeout(timer);
  timer = null;
  polls = [];
  chart = [];
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("login-view").hidden = false;
  setText("poll-state", "");
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("token").focus();
}

async function signIn(candidate) {
  const res = await call("GET", "/stats", undefined, candidate);
  if (res.status === 401) {
    showLogin("This token was refused by the admin listener.");
  } else if (!res.ok) {
    showLogin(`The admin listener answered ${res.status || "nothing"}: ${res.json?.message ?? res.text}`);
  } else {
    keepToken(candidate);
    $("token").value = "";
    showDashboard();
  }
}

function showDashboard() {
  $("login-view").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  $("login-error").hidden = true;
  workspacesAbsent = false;
  routesForSettings = "";
  probeWarm();
  poll();
}

// --- Polling -------------------------------------------------------------------

async function poll() {
  if (polling || !token()) return;
  polling = true;
  clearTimeout(timer);
  try {
    const wanted = [
      call("GET", "/stats"),
      call("GET", "/metrics"),
      call("GET", "/health"),
      workspacesAbsent ? Promise.resolve(null) : call("GET", "/stats/workspaces?top=10"),
    ];
    const [stats, metrics, health, workspaces] = await Promise.all(wanted);
    if (!token()) return; // signed out meanwhile (a 401)
    if (!stats.ok || !metrics.ok || !stats.json) {
      const bad = stats.ok ? metrics : stats;
      setText("poll-state", `update failed: ${bad.status || "no answer"}`);
    } else {
      draw(stats.json, parse(metrics.text), health.json, workspaces);
      setText("poll-state", `updated ${new Date().toLocaleTimeString("en-GB")}`);
    }
  } finally {
    polling = false;
    if (token()) timer = setTimeout(poll, POLL_MS);
  }
}

/** Draws everything from one poll. */
function draw(stats, metrics, health, workspaces) {
  const now = Date.now();
  const sample = { t: now, stats, metrics };
  polls.push(sample);
  while (polls.length > 2 && now - polls[1].t >= WINDOW_MS) polls.shift();
  const prev = polls.length > 1 ? polls[polls.length - 2] : null;
  const first = polls[0];
  drawOverview(sample, prev, first, health);
  drawRoutes(sample, prev);
  drawWorkspaces(workspaces);
  const routes = Object.keys(stats.routes || {}).filter((r) => r !== "unmatched");
  const key = routes.join("\n");
  if (key !== routesForSettings) {
    routesForSettings = key;
    loadSettings(routes);
  }
}

function requestsByStatus(metrics, filter = {}) {
  return sumBy(metrics, "tagcache_requests_total", "cache_status", filter);
}

function served(by) {
  return (by.HIT || 0) + (by.STALE || 0) + (by.REVALIDATED || 0);
}

function lookups(by) {
  return served(by) + (by.MISS || 0) + (by.EXPIRED || 0);
}

function drawOverview(sample, prev, first, health) {
  const { stats, metrics } = sample;
  const by = requestsByStatus(metrics);
  const total = STATUSES.reduce((acc, s) => acc + (by[s] || 0), 0);
  setText("total-requests", count(total));

  // Requests per second by status, since the previous poll.
  const dt = prev ? (sample.t - prev.t) / 1000 : 0;
  const before = prev ? requestsByStatus(prev.metrics) : {};
  const rates = {};
  for (const s of STATUSES) rates[s] = dt > 0 ? Math.max(0, (by[s] || 0) - (before[s] || 0)) / dt : 0;
  const totalRate = STATUSES.reduce((acc, s) => acc + rates[s], 0);
  setText("total-rate", rate(totalRate));
  fill(
    $("status-rates"),
    STATUSES.map((s) =>
      el(
        "tr",
        { className: `s-${s}` },
        el("td", {}, el("span", { className: "dot" }), s),
        el("td", { className: "num", id: `rate-${s}` }, rate(rates[s])),
        el("td", { className: "num" }, count(by[s] || 0)),
      ),
    ),
  );
  if (prev) {
    chart.push({ total: totalRate, HIT: rates.HIT, MISS: rates.MISS, BYPASS: rates.BYPASS });
    if (chart.length > CHART_POINTS) chart.shift();
  }
  drawChart();

  // Hit ratio: since start (from /stats) and over the last minute.
  setText("hit-ratio", percent(stats.hit_rate));
  const start = requestsByStatus(first.metrics);
  const windowBy = {};
  for (const s of STATUSES) windowBy[s] = (by[s] || 0) - (start[s] || 0);
  const recentLookups = lookups(windowBy);
  setText("hit-ratio-recent", recentLookups > 0 ? percent(served(windowBy) / recentLookups) : "–");

  drawLatency("lookup", "tagcache_lookup_duration_seconds", metrics, first.metrics);
  drawLatency("origin", "tagcache_origin_duration_seconds", metrics, first.metrics);

  // Memory.
  setText("bytes", bytes(stats.bytes));
  setText("entries", count(stats.entries));
  const max = sum(metrics, "tagcache_cache_max_bytes");
  const meter = $("bytes-meter");
  meter.value = max > 0 ? Math.min(1, stats.bytes / max) : 0;
  meter.title = max > 0 ? `${bytes(stats.bytes)} of ${bytes(max)}` : "";

  // Evictions and purges: totals, and how many in the last minute.
  setText("evictions", count(stats.evictions));
  const evictedBefore = first.stats.evictions ?? stats.evictions;
  setText("evictions-rate", count(stats.evictions - evictedBefore));
  const applied = (m) =>
    sum(m, "tagcache_purges_total", { result: "ok" }) + sum(m, "tagcache_purges_total", { result: "not_shared" });
  setText("purges-total", count(applied(metrics)));
  setText("purges-rate", count(applied(metrics) - applied(first.metrics)));

  // Redis.
  const redis = health?.redis;
  if (redis) {
    setText("redis-state", health.status === "ok" ? "ok" : health.status || "?");
    setText("redis-detail", `breaker ${redis.breaker}, ${redis.subscribed ? "subscribed" : "not subscribed"}`);
    $("redis-state").classList.toggle("bad", health.status !== "ok");
  } else {
    setText("redis-state", "none");
    setText("redis-detail", "memory store only");
    $("redis-state").classList.remove("bad");
  }

  // Instance.
  const info = (metrics.get("tagcache_build_info") || [])[0];
  const version = info ? `v${info.labels.version} (${info.labels.profile})` : "";
  const started = sum(metrics, "process_start_time_seconds");
  const up = started > 0 ? uptime(sample.t / 1000 - started) : "–";
  setText("uptime", up);
  setText("version", version);
  setText("instance", `${location.host} · ${version} · up ${up}`);
}

/** p50 and p99 of a latency histogram: over the last minute when anything
 * was observed in it, otherwise since start. */
function drawLatency(id, name, metrics, firstMetrics) {
  const now = buckets(metrics, name);
  const windowed = bucketDelta(now, buckets(firstMetrics, name));
  const observed = windowed.length ? windowed[windowed.length - 1].count : 0;
  const use = observed > 0 ? windowed : now;
  const n = use.length ? use[use.length - 1].count : 0;
  if (n === 0) {
    setText(`${id}-latency`, "–");
    setText(`${id}-window`, "nothing observed yet");
    return;
  }
  setText(`${id}-latency`, `${latency(quantile(0.5, use))} / ${latency(quantile(0.99, use))}`);
  setText(`${id}-window`, `${count(n)} ${observed > 0 ? "in the last minute" : "since start"}`);
}

const SVG = "http://www.w3.org/2000/svg";

function drawChart() {
  const svg = $("rate-chart");
  const width = 300;
  const height = 80;
  const top = Math.max(1, ...chart.map((p) => p.total));
  // The first points spread over a shorter span, so a new chart is readable.
  const span = Math.max(chart.length, 30) - 1;
  const step = width / span;
  const offset = (span + 1 - chart.length) * step;
  const line = (key) => {
    const node = document.createElementNS(SVG, "polyline");
    node.setAttribute("class", `line l-${key}`);
    node.setAttribute(
      "points",
      chart.map((p, i) => `${(offset + i * step).toFixed(1)},${(height - (p[key] / top) * (height - 4)).toFixed(1)}`).join(" "),
    );
    return node;
  };
  svg.replaceChildren(line("total"), line("BYPASS"), line("MISS"), line("HIT"));
  setText("chart-top", `top of chart: ${rate(top)} req/s`);
}

function drawRoutes(sample, prev) {
  const { stats, metrics } = sample;
  const dt = prev ? (sample.t - prev.t) / 1000 : 0;
  const names = Object.keys(stats.routes || {}).sort((a, b) =>
    a === "unmatched" ? 1 : b === "unmatched" ? -1 : a.localeCompare(b),
  );
  fill(
    $("routes"),
    names.map((name) => {
      const r = stats.routes[name];
      const by = requestsByStatus(metrics, { route: name });
      const total = STATUSES.reduce((acc, s) => acc + (by[s] || 0), 0);
      let perSecond = 0;
      if (prev && dt > 0) {
        const was = requestsByStatus(prev.metrics, { route: name });
        const before = STATUSES.reduce((acc, s) => acc + (was[s] || 0), 0);
        perSecond = Math.max(0, total - before) / dt;
      }
      const n = lookups(by);
      return el(
        "tr",
        { data: { route: name } },
        el("td", {}, name),
        el("td", { className: "num requests" }, count(total)),
        el("td", { className: "num" }, rate(perSecond)),
        el("td", { className: "num" }, n > 0 ? percent(served(by) / n) : "–"),
        el("td", { className: "num" }, count(r.hit ?? by.HIT ?? 0)),
        el("td", { className: "num" }, count(r.miss ?? by.MISS ?? 0)),
        el("td", { className: "num" }, count(r.bypass ?? by.BYPASS ?? 0)),
        el("td", { className: "num" }, count(r.stores ?? sum(metrics, "tagcache_stores_total", { route: name }))),
        Number.isFinite(r.bytes)
          ? el("td", { className: "num" }, bytes(r.bytes))
          : el("td", { className: "num muted", title: "this instance does not report bytes per route" }, "–"),
      );
    }),
  );
}

function drawWorkspaces(res) {
  if (res === null) return;
  if (res.status === 404) {
    workspacesAbsent = true;
    $("workspaces-absent").hidden = false;
    $("workspaces-table").hidden = true;
    setText("workspaces-tracked", "");
    return;
  }
  if (!res.ok || !Array.isArray(res.json?.workspaces)) return;
  $("workspaces-absent").hidden = true;
  $("workspaces-table").hidden = false;
  fill(
    $("workspaces"),
    res.json.workspaces.map((w) =>
      el(
        "tr",
        { data: { workspace: w.workspace } },
        el("td", {}, w.workspace),
        el("td", { className: "num" }, count(w.hits)),
        el("td", { className: "num" }, count(w.misses)),
        el("td", { className: "num" }, percent(w.hit_rate)),
        el("td", { className: "num" }, count(w.stores)),
        el("td", { className: "num" }, bytes(w.bytes)),
        el("td", { className: "num" }, count(w.entries)),
      ),
    ),
  );
  setText("workspaces-tracked", Number.isFinite(res.json.tracked) ? `${count(res.json.tracked)} workspaces tracked` : "");
}

// --- Start -----------------------------------------------------------------------

function start() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const candidate = $("token").value.trim();
    if (candidate) signIn(candidate);
  });
  $("logout").addEventListener("click", () => showLogin(""));
  document.addEventListener("tagcache:unauthorized", () =>
    showLogin("The admin token was refused; sign in again."),
  );
  initForms(() => {
    setTimeout(poll, 0);
  });
  if (token()) {
    showDashboard();
  } else {
    showLogin("");
  }
}

start();
