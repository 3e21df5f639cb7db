// The admin dashboard (/ui) in a real browser: Debian's Chromium, headless,
// driven through playwright-core, against a real tagcache binary in front of
// a small origin in this process. Every port is ephemeral and both processes
// are stopped at the end.
//
//   TAGCACHE_BIN   the binary (default: target/debug/tagcache)
//   CHROMIUM       the browser (default: /usr/bin/chromium)
//   SCREENSHOT     where to save a screenshot of the dashboard (default: a
//                  temporary file); docs/dashboard.png is made this way.

"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { chromium } = require("playwright-core");

const ROOT = path.resolve(__dirname, "..", "..");
const BIN = process.env.TAGCACHE_BIN || path.join(ROOT, "target", "debug", "tagcache");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = `ui-test-${crypto.randomBytes(12).toString("hex")}`;
const WAIT_MS = 15_000;

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tagcache-ui-"));
let origin;
let tagcache;
let tagcacheLog = "";
let context;
let page;
let proxyPort;
let adminPort;
const requested = [];
const problems = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The origin: JSON for any path, with a counter that changes every answer. */
function startOrigin() {
  let served = 0;
  const server = http.createServer((req, res) => {
    served += 1;
    const body = JSON.stringify({ path: req.url, workspace: req.headers["x-workspace-id"] ?? null, n: served });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function waitFor(what, check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${tagcacheLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A GET through the proxy as `workspace`; resolves to X-Cache-Status. */
async function through(url, workspace) {
  const res = await fetch(`http://127.0.0.1:${proxyPort}${url}`, {
    headers: { "x-workspace-id": workspace, "x-user-id": "u1" },
  });
  await res.arrayBuffer();
  assert.equal(res.status, 200, `${url} as ${workspace}`);
  return res.headers.get("x-cache-status");
}

async function admin(method, url) {
  return fetch(`http://127.0.0.1:${adminPort}${url}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
}

function numberIn(text) {
  return Number(text.replace(/[^0-9]/g, ""));
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `${BIN} missing: cargo build --bin tagcache first`);
  origin = await startOrigin();
  proxyPort = await freePort();
  adminPort = await freePort();
  const config = path.join(work, "tagcache.yaml");
  fs.writeFileSync(
    config,
    `listen: "127.0.0.1:${proxyPort}"
upstream:
  address: "127.0.0.1:${origin.address().port}"
admin:
  listen: "127.0.0.1:${adminPort}"
  token: "\${UI_TEST_ADMIN_TOKEN}"
storage:
  memory:
    max_size: 16MiB
tenant:
  workspace: { header: X-Workspace-ID }
  user: { header: X-User-ID }
server:
  threads: 1
  grace_period: 1s
routes:
  - name: items
    match: "GET /api/items/{id}"
    ttl: 60s
    tags: ["item:{workspace}:{id}"]
  - name: contact_list
    match: "GET /api/boards/{board_id}/contacts"
    ttl: 180s
    key:
      query: [page]
    tags: ["board:{workspace}:{board_id}"]
`,
  );
  tagcache = spawn(BIN, ["run", "-c", config], {
    env: { ...process.env, UI_TEST_ADMIN_TOKEN: TOKEN, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (chunk) => {
    tagcacheLog = (tagcacheLog + chunk.toString()).slice(-20_000);
  };
  tagcache.stdout.on("data", keep);
  tagcache.stderr.on("data", keep);
  await waitFor("the admin listener", async () => (await fetch(`http://127.0.0.1:${adminPort}/health`)).ok);
  await waitFor("the proxy listener", async () => {
    const res = await fetch(`http://127.0.0.1:${proxyPort}/health-of-origin`);
    await res.arrayBuffer();
    return res.status === 200;
  });

  // The flags this machine needs: no sandbox (root), no GPU, nothing that
  // reaches out to the network, and a fresh profile.
  context = await chromium.launchPersistentContext(path.join(work, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("request", (r) => requested.push(new URL(r.url()).pathname));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[14]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
});

after(async () => {
  await context?.close().catch(() => {});
  if (tagcache && tagcache.exitCode === null) {
    const exited = new Promise((r) => tagcache.once("exit", r));
    tagcache.kill("SIGTERM");
    const timer = setTimeout(() => tagcache.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
  await new Promise((r) => (origin ? origin.close(r) : r()));
  fs.rmSync(work, { recursive: true, force: true });
});

test("the page is served with its security headers and asks for the token first", async () => {
  const res = await page.goto(`http://127.0.0.1:${adminPort}/ui`);
  assert.equal(res.status(), 200);
  const h = res.headers();
  assert.match(h["content-security-policy"], /script-src 'self';/);
  assert.match(h["content-security-policy"], /connect-src 'self';/);
  assert.equal(h["x-content-type-options"], "nosniff");
  assert.equal(h["referrer-policy"], "no-referrer");
  assert.equal(h["cache-control"], "no-store");
  await page.locator("#login-form").waitFor();
  assert.equal(await page.locator("#dashboard").isVisible(), false);
  // Nothing but the page's own files was asked for before sign-in.
  const data = requested.filter((p) => !p.startsWith("/ui"));
  assert.deepEqual(data, [], "data requested before sign-in");
});

test("a wrong token is refused and not kept", async () => {
  await page.fill("#token", "not-the-token");
  await page.click("#login-submit");
  await page.locator("#login-error").waitFor({ state: "visible" });
  assert.match(await page.textContent("#login-error"), /refused/);
  assert.equal(await page.locator("#dashboard").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
});

test("signed in, the request counter moves after traffic", async () => {
  await page.fill("#token", TOKEN);
  await page.click("#login-submit");
  await page.locator("#dashboard").waitFor({ state: "visible" });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("tagcache.admin.token")), TOKEN);
  await page.waitForFunction(() => document.getElementById("poll-state").textContent.startsWith("updated"));
  const before = numberIn(await page.textContent("#total-requests"));
  for (let i = 0; i < 5; i += 1) {
    await through(`/api/boards/b${i % 2}/contacts?page=1`, "w1");
  }
  await page.waitForFunction(
    (n) => Number(document.getElementById("total-requests").textContent.replace(/[^0-9]/g, "")) >= n,
    before + 5,
    { timeout: WAIT_MS },
  );
  // The route table follows: two misses and three hits on contact_list.
  const row = page.locator('#routes tr[data-route="contact_list"]');
  await page.waitForFunction(
    () => document.querySelector('#routes tr[data-route="contact_list"] .requests')?.textContent === "5",
    null,
    { timeout: WAIT_MS },
  );
  assert.match(await row.textContent(), /60\.0%/);
  // No lookup yet? The latency tile says so; after traffic it holds figures.
  await page.waitForFunction(() => document.getElementById("lookup-latency").textContent.includes("/"));
});

test("the page reads /metrics as Prometheus does", async () => {
  const text = await (await admin("GET", "/metrics")).text();
  const stats = await (await admin("GET", "/stats")).json();
  const got = await page.evaluate(async (text) => {
    const prom = await import("/ui/prom.js");
    const m = prom.parse(text);
    const cases = [
      // [q, cumulative buckets, expected] as histogram_quantile answers.
      [0.5, [{ le: 0.1, count: 0 }, { le: 0.2, count: 10 }, { le: Infinity, count: 10 }], 0.15],
      [0.99, [{ le: 0.001, count: 50 }, { le: 0.01, count: 100 }, { le: Infinity, count: 100 }], 0.001 + 0.009 * 0.98],
      [0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 4 }], 1],
      [0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 0 }], NaN],
    ].map(([q, b, want]) => [prom.quantile(q, b), want]);
    const escaped = prom.parse('x{a="q\\"uote",b="back\\\\slash"} 2\nx{a="",b="n"} +Inf\n# HELP x y\n');
    return {
      hits: prom.sum(m, "tagcache_requests_total", { cache_status: "HIT" }),
      stores: prom.sum(m, "tagcache_stores_total"),
      lookups: prom.buckets(m, "tagcache_lookup_duration_seconds").at(-1).count,
      lookupCount: prom.sum(m, "tagcache_lookup_duration_seconds_count"),
      version: m.get("tagcache_build_info")[0].labels.version,
      cases: cases.map(([a, b]) => (Number.isNaN(b) ? Number.isNaN(a) : Math.abs(a - b) < 1e-12)),
      escaped: escaped.get("x"),
    };
  }, text);
  assert.equal(got.hits, stats.hits);
  assert.equal(got.stores, stats.stores);
  assert.ok(got.lookups > 0);
  assert.equal(got.lookups, got.lookupCount);
  assert.match(got.version, /^\d+\.\d+\.\d+/);
  assert.deepEqual(got.cases, [true, true, true, true]);
  assert.deepEqual(got.escaped, [
    { labels: { a: 'q"uote', b: "back\\slash" }, value: 2 },
    { labels: { a: "", b: "n" }, value: Infinity },
  ]);
});

test("a tag purged through the form makes the next request a MISS", async () => {
  // An empty form is refused in the page, without a call.
  const calls = requested.length;
  await page.check('input[name="kind"][value="tags"]');
  await page.fill("#purge-tags", "");
  await page.click("#purge-submit");
  assert.match(await page.textContent("#purge-answer"), /at least one tag/);
  assert.equal(requested.slice(calls).filter((p) => p === "/purge").length, 0);

  assert.equal(await through("/api/items/p1", "w1"), "MISS");
  assert.equal(await through("/api/items/p1", "w1"), "HIT");
  await page.check('input[name="kind"][value="tags"]');
  await page.fill("#purge-tags", "item:w1:p1");
  await page.click("#purge-submit");
  await page.waitForFunction(() => document.getElementById("purge-answer").textContent.startsWith("200"));
  const answer = JSON.parse((await page.textContent("#purge-answer")).split("\n").slice(1).join("\n"));
  assert.equal(answer.purged.kind, "tag");
  assert.equal(answer.purged.tags, 1);
  assert.equal(await through("/api/items/p1", "w1"), "MISS");
});

test("a workspace switched off in the settings panel makes the next request a BYPASS", async () => {
  const probe = await admin("GET", "/settings");
  await probe.arrayBuffer();
  assert.equal(probe.status, 200);
  assert.equal(await through("/api/items/off1", "w-off"), "MISS");
  await page.locator("#settings-panel").waitFor({ state: "visible" });
  await page.fill("#ws-name", "w-off");
  await page.uncheck("#ws-enabled");
  await page.click("#ws-submit");
  await page.waitForFunction(() => /^2\d\d/.test(document.getElementById("settings-answer").textContent));
  await page.locator('#settings-workspaces tr[data-workspace="w-off"]').waitFor();
  assert.equal(await through("/api/items/off1", "w-off"), "BYPASS");
  assert.equal(await through("/api/items/off1", "w1"), "MISS");
});

test("panels whose endpoint this instance lacks say so", async () => {
  for (const [url, method, id] of [
    ["/stats/workspaces?top=10", "GET", "#workspaces-absent"],
    ["/warm", "POST", "#warm-absent"],
  ]) {
    const res = await admin(method, url);
    await res.arrayBuffer();
    const shown = await page.locator(id).isVisible();
    assert.equal(shown, res.status === 404, `${url} answered ${res.status}, panel absent: ${shown}`);
  }
});

test("the dashboard as a screenshot, and no error under its CSP", async () => {
  // Traffic over a few polls, still flowing at the screenshot, so the rates
  // and the chart have something to draw.
  let flowing = true;
  const traffic = (async () => {
    for (let i = 0; flowing; i += 1) {
      await through(`/api/items/s${i % 7}`, i % 3 ? "w1" : "w2");
      if (i % 5 === 0) await through(`/api/boards/b${i % 3}/contacts?page=${i % 4}`, "w1");
      await new Promise((r) => setTimeout(r, 40 + (i % 4) * 20));
    }
  })();
  await page.waitForTimeout(7_000);
  const file = process.env.SCREENSHOT || path.join(work, "dashboard.png");
  await page.screenshot({ path: file, fullPage: true });
  const shownRate = await page.textContent("#total-rate");
  flowing = false;
  await traffic;
  assert.notEqual(shownRate, "0");
  assert.ok(fs.statSync(file).size > 10_000);
  assert.deepEqual(problems, []);
});

test("signing out forgets the token and stops the calls", async () => {
  await page.click("#logout");
  await page.locator("#login-form").waitFor({ state: "visible" });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  const count = requested.length;
  await page.waitForTimeout(2_500);
  assert.deepEqual(requested.slice(count), []);
  await page.reload();
  await page.locator("#login-form").waitFor({ state: "visible" });
  assert.equal(await page.locator("#dashboard").isVisible(), false);
});
