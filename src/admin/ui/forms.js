// The panels that change things: purge, run-time settings, warming. Each
// shows the admin API's answer as it came; a panel whose endpoint answers 404
// says it is not available on this instance.

import { call } from "./api.js";
import { $, el, fill, lines, showAnswer, setText } from "./dom.js";

let afterChange = () => {};

/** Wires the forms; `onChange` runs after a purge or a settings change. */
export function initForms(onChange) {
  afterChange = onChange;
  initPurge();
  $("ws-form").addEventListener("submit", (e) => {
    e.preventDefault();
    saveWorkspaceForm();
  });
  $("warm-form").addEventListener("submit", (e) => {
    e.preventDefault();
    warm();
  });
}

// --- Purge -----------------------------------------------------------------

function purgeKind() {
  return $("purge-form").querySelector('input[name="kind"]:checked').value;
}

function initPurge() {
  const form = $("purge-form");
  const sync = () => {
    const kind = purgeKind();
    for (const part of form.querySelectorAll(".kind")) {
      part.hidden = part.dataset.kind !== kind;
    }
  };
  for (const radio of form.querySelectorAll('input[name="kind"]')) {
    radio.addEventListener("change", sync);
  }
  sync();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    purge();
  });
}

/** The `POST /purge` body the form describes, or an error message. */
function purgeBody() {
  const soft = $("purge-soft").checked;
  switch (purgeKind()) {
    case "tags": {
      const tags = lines($("purge-tags").value);
      return tags.length ? { body: { tags, soft } } : { error: "Give at least one tag." };
    }
    case "urls": {
      const workspace = $("purge-url-workspace").value.trim();
      const user = $("purge-url-user").value.trim();
      const urls = lines($("purge-urls").value).map((url) => {
        const item = { url };
        if (workspace) item.workspace = workspace;
        if (user) item.user = user;
        return item;
      });
      return urls.length ? { body: { urls, soft } } : { error: "Give at least one URL." };
    }
    case "workspaces": {
      const workspaces = lines($("purge-workspaces").value);
      return workspaces.length
        ? { body: { workspaces, soft } }
        : { error: "Give at least one workspace." };
    }
    case "all":
      return $("purge-all-confirm").checked
        ? { body: { all: true, soft } }
        : { error: "Tick the box to purge every entry." };
    default:
      return { error: "Choose what to purge." };
  }
}

async function purge() {
  const { body, error } = purgeBody();
  if (error) {
    showAnswer("purge-answer", { status: 0, ok: false, json: null, text: error });
    return;
  }
  const button = $("purge-submit");
  button.disabled = true;
  try {
    const res = await call("POST", "/purge", body);
    showAnswer("purge-answer", res);
    if (res.ok) afterChange();
  } finally {
    button.disabled = false;
  }
}

// --- Run-time settings ---------------------------------------------------------

let settings = null;
let knownRoutes = [];

/** Loads `GET /settings` and draws it; `routes` are the configured route names. */
export async function loadSettings(routes) {
  if (routes) knownRoutes = routes;
  const res = await call("GET", "/settings");
  if (res.status === 404) {
    $("settings-absent").hidden = false;
    $("settings-panel").hidden = true;
    return false;
  }
  $("settings-absent").hidden = true;
  if (!res.ok || !res.json) {
    showAnswer("settings-answer", res);
    return true;
  }
  settings = res.json;
  $("settings-panel").hidden = false;
  drawSettings();
  return true;
}

function ttlInput(value, label) {
  return el("input", {
    className: "ttl",
    value: value ?? "",
    placeholder: "from config",
    spellcheck: false,
    title: `${label}: a duration such as 60s or 5m; empty keeps the config's`,
  });
}

function routeSetting(enabled, ttl) {
  const out = { enabled };
  if (ttl.trim() !== "") out.ttl = ttl.trim();
  return out;
}

function drawSettings() {
  const routes = settings.routes || {};
  const names = [...new Set([...knownRoutes, ...Object.keys(routes)])].sort();
  fill(
    $("settings-routes"),
    names.map((name) => {
      const current = routes[name] || {};
      const enabled = el("input", { type: "checkbox", checked: current.enabled !== false });
      const ttl = ttlInput(current.ttl, name);
      return el(
        "tr",
        { data: { route: name } },
        el("td", {}, name),
        el("td", {}, enabled),
        el("td", {}, ttl),
        el(
          "td",
          { className: "actions" },
          el(
            "button",
            {
              type: "button",
              className: "save",
              on: { click: () => put(`/settings/routes/${encodeURIComponent(name)}`, routeSetting(enabled.checked, ttl.value)) },
            },
            "Save",
          ),
          el(
            "button",
            {
              type: "button",
              className: "secondary",
              on: { click: () => remove(`/settings/routes/${encodeURIComponent(name)}`) },
            },
            "Reset",
          ),
        ),
      );
    }),
  );
  const workspaces = settings.workspaces || {};
  fill(
    $("settings-workspaces"),
    Object.keys(workspaces)
      .sort()
      .map((w) => workspaceRow(w, workspaces[w] || {})),
  );
}

/** One workspace: its switch, its route overrides, save and delete. */
function workspaceRow(workspace, current) {
  const enabled = el("input", { type: "checkbox", checked: current.enabled !== false });
  const overrides = el("div", { className: "overrides" });
  const addOverride = (route, value = {}) => {
    const on = el("input", { type: "checkbox", checked: value.enabled !== false });
    const ttl = ttlInput(value.ttl, `${workspace} ${route}`);
    const line = el(
      "div",
      { className: "override", data: { route } },
      el("span", { className: "route-name" }, route),
      el("label", {}, on, " on"),
      ttl,
    );
    line.append(
      el(
        "button",
        { type: "button", className: "secondary", title: "remove this override", on: { click: () => line.remove() } },
        "×",
      ),
    );
    line.read = () => routeSetting(on.checked, ttl.value);
    overrides.append(line);
  };
  for (const [route, value] of Object.entries(current.routes || {})) addOverride(route, value);
  const pick = el(
    "select",
    { title: "add a route override" },
    el("option", { value: "" }, "+ route"),
    ...knownRoutes.map((r) => el("option", { value: r }, r)),
  );
  pick.addEventListener("change", () => {
    if (pick.value && !overrides.querySelector(`[data-route="${CSS.escape(pick.value)}"]`)) {
      addOverride(pick.value);
    }
    pick.value = "";
  });
  const body = () => {
    const routes = {};
    for (const line of overrides.children) routes[line.dataset.route] = line.read();
    return { enabled: enabled.checked, routes };
  };
  const path = `/settings/workspaces/${encodeURIComponent(workspace)}`;
  return el(
    "tr",
    { data: { workspace } },
    el("td", {}, workspace),
    el("td", {}, enabled),
    el("td", {}, overrides, pick),
    el(
      "td",
      { className: "actions" },
      el("button", { type: "button", className: "save", on: { click: () => put(path, body()) } }, "Save"),
      el("button", { type: "button", className: "secondary", on: { click: () => remove(path) } }, "Delete"),
    ),
  );
}

/** The form under the table: one workspace switched on or off. */
function saveWorkspaceForm() {
  const workspace = $("ws-name").value.trim();
  if (!workspace) return;
  const body = { enabled: $("ws-enabled").checked };
  // Keep the workspace's route overrides whether PUT replaces or merges.
  const existing = settings?.workspaces?.[workspace];
  if (existing?.routes) body.routes = existing.routes;
  put(`/settings/workspaces/${encodeURIComponent(workspace)}`, body);
}

async function put(path, body) {
  const res = await call("PUT", path, body);
  await settled(res);
}

async function remove(path) {
  const res = await call("DELETE", path);
  await settled(res);
}

async function settled(res) {
  showAnswer("settings-answer", res);
  if (res.ok) {
    await loadSettings();
    afterChange();
  }
}

// --- Warming ---------------------------------------------------------------

/** Whether `POST /warm` exists here (an empty list warms nothing). */
export async function probeWarm() {
  const res = await call("POST", "/warm", { requests: [] });
  const absent = res.status === 404;
  $("warm-absent").hidden = !absent;
  $("warm-form").hidden = absent;
  return !absent;
}

async function warm() {
  const workspace = $("warm-workspace").value.trim();
  const user = $("warm-user").value.trim();
  const auth = $("warm-auth").value;
  const urls = lines($("warm-urls").value);
  if (urls.length === 0) {
    showAnswer("warm-answer", { status: 0, ok: false, json: null, text: "Give at least one URL." });
    return;
  }
  const requests = urls.map((url) => {
    const r = { url };
    if (workspace) r.workspace = workspace;
    if (user) r.user = user;
    if (auth) r.headers = { authorization: auth };
    return r;
  });
  const concurrency = Number.parseInt($("warm-concurrency").value, 10) || 4;
  const button = $("warm-submit");
  button.disabled = true;
  try {
    const res = await call("POST", "/warm", { requests, concurrency, refresh: $("warm-refresh").checked });
    drawWarm(res);
    if (res.ok) afterChange();
  } finally {
    button.disabled = false;
  }
}

function drawWarm(res) {
  const table = $("warm-results");
  const results = res.json?.results;
  if (!res.ok || !Array.isArray(results)) {
    table.hidden = true;
    setText("warm-summary", "");
    showAnswer("warm-answer", res);
    return;
  }
  $("warm-answer").hidden = true;
  const j = res.json;
  setText(
    "warm-summary",
    `stored ${j.stored ?? 0}, fresh ${j.fresh ?? 0}, bypassed ${j.bypassed ?? 0}, errors ${j.errors ?? 0}`,
  );
  fill(
    table.tBodies[0],
    results.map((r) =>
      el(
        "tr",
        {},
        el("td", { className: "mono" }, r.url ?? ""),
        el("td", {}, r.workspace ?? ""),
        el("td", { className: `outcome o-${r.outcome}` }, r.outcome ?? ""),
        el("td", { className: "num" }, r.status ?? ""),
        el("td", { className: "num" }, Number.isFinite(r.ms) ? r.ms.toFixed(1) : ""),
        el("td", {}, r.detail ?? ""),
      ),
    ),
  );
  table.hidden = false;
}
