// Small DOM and formatting helpers. Text always goes in through textContent,
// never as markup, so nothing an instance reports can become HTML.

/** The element with this id. */
export function $(id) {
  return document.getElementById(id);
}

/** Sets the text of the element with this id. */
export function setText(id, text) {
  const node = $(id);
  if (node && node.textContent !== String(text)) {
    node.textContent = String(text);
  }
}

/**
 * A new element: `attrs` are properties (`className`, `type`, `checked`,
 * `value`, `dataset.*` through `data`), children are nodes or text.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "data") {
      Object.assign(node.dataset, v);
    } else if (k === "on") {
      for (const [event, fn] of Object.entries(v)) node.addEventListener(event, fn);
    } else {
      node[k] = v;
    }
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** Replaces the children of `node`. */
export function fill(node, children) {
  node.replaceChildren(...children);
}

/** Shows an API answer in a <pre>: its status and its JSON, indented. */
export function showAnswer(id, res) {
  const node = $(id);
  node.hidden = false;
  node.classList.toggle("error", !res.ok);
  const head = res.status === 0 ? "no answer" : `${res.status}${res.ok ? " OK" : ""}`;
  const body = res.json !== null ? JSON.stringify(res.json, null, 2) : res.text;
  node.textContent = `${head}\n${body}`;
}

/** 1234 -> "1,234". */
export function count(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
}

/** A rate with sensible precision. */
export function rate(n) {
  if (!Number.isFinite(n)) return "–";
  if (n === 0) return "0";
  if (n < 10) return n.toFixed(2);
  if (n < 100) return n.toFixed(1);
  return Math.round(n).toLocaleString("en-US");
}

/** 0.5 -> "50.0%". */
export function percent(x) {
  return Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "–";
}

/** Bytes in binary units. */
export function bytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** Seconds as a latency: "85 µs", "12.3 ms", "1.20 s". */
export function latency(s) {
  if (!Number.isFinite(s)) return "–";
  if (s < 0.001) return `${Math.round(s * 1e6)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  return `${s.toFixed(2)} s`;
}

/** Seconds as an uptime: "3d 4h", "2h 5m", "4m 10s". */
export function uptime(s) {
  if (!Number.isFinite(s) || s < 0) return "–";
  s = Math.floor(s);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

/** Non-empty trimmed lines of a textarea. */
export function lines(text) {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}
