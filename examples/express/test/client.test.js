'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { createTagcacheClient, TagcacheError, sign, backoffDelay } = require('../tagcache-client');
const { startAdmin, verifySignature, report, quietLogger } = require('../fixtures/fake-admin');

const SECRET = 'whsec_test_4f1c';
const TOKEN = 'admin-token-123';
const moved = { event: 'contact:moved', workspace_id: 'w1', board_id: 'b1', from_column_id: 'col1', to_column_id: 'col2' };

function client(url, extra = {}) {
  return createTagcacheClient({ adminUrl: url, token: TOKEN, webhookSecret: SECRET, baseDelayMs: 5, maxDelayMs: 50, logger: quietLogger(), ...extra });
}

test('sign() matches an HMAC-SHA256 over "<t>.<body>" computed independently', () => {
  const body = '{"event":"contact:moved","workspace_id":"w1","board_id":"b1"}';
  const header = sign(SECRET, body, 1732250000);
  const expected = crypto.createHmac('sha256', SECRET).update(`1732250000.${body}`).digest('hex');
  assert.equal(header, `t=1732250000,v1=${expected}`);
  // Same vector as tagcache's Rust signer: HMAC-SHA256("s3cret", "1800000000.{}").
  assert.equal(sign('s3cret', '{}', 1800000000), `t=1800000000,v1=${crypto.createHmac('sha256', 's3cret').update('1800000000.{}').digest('hex')}`);
});

test('sendEvent posts a signed, authenticated JSON body the server can verify', async (t) => {
  const admin = await startAdmin((req, raw) => {
    const v = verifySignature(SECRET, req.headers['x-tagcache-signature'], raw);
    if (!v.ok) return { status: 401, body: { error: 'bad_signature', message: v.why, field: 'x-tagcache-signature' } };
    return { body: report(['board:w1:b1', 'counts:w1']) };
  });
  t.after(() => admin.close());

  const res = await client(admin.url).sendEvent(moved);
  assert.deepEqual(res.tags, ['board:w1:b1', 'counts:w1']);
  assert.equal(admin.requests.length, 1);
  const [r] = admin.requests;
  assert.equal(r.method, 'POST');
  assert.equal(r.url, '/events');
  assert.equal(r.headers.authorization, `Bearer ${TOKEN}`);
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.match(r.headers['x-tagcache-signature'], /^t=\d+,v1=[0-9a-f]{64}$/);
  const v = verifySignature(SECRET, r.headers['x-tagcache-signature'], r.raw);
  assert.ok(v.ok, v.why);
  assert.ok(Math.abs(v.t - Date.now() / 1000) < 5, 'timestamp is now, in seconds');
  // A wrong secret does not verify: the MAC really covers the body.
  assert.equal(verifySignature('other', r.headers['x-tagcache-signature'], r.raw).ok, false);
  const sent = JSON.parse(r.raw);
  const { nonce, ...fields } = sent;
  assert.deepEqual(fields, moved);
  assert.match(nonce, /^[0-9a-f]{16}$/);
});

test('identical events sent in the same second get distinct signatures (no false replay)', async (t) => {
  const seen = new Set();
  const admin = await startAdmin((req, raw) => {
    const v = verifySignature(SECRET, req.headers['x-tagcache-signature'], raw);
    if (!v.ok) return { status: 401, body: { error: 'bad_signature', message: v.why } };
    if (seen.has(v.v1)) return { status: 401, body: { error: 'bad_signature', message: 'signature already used (replay)' } };
    seen.add(v.v1);
    return { body: report(['board:w1:b1']) };
  });
  t.after(() => admin.close());
  const c = client(admin.url);
  await Promise.all([c.sendEvent(moved), c.sendEvent(moved), c.sendEvent(moved)]);
  assert.equal(seen.size, 3);
});

test('sendEvents posts one array (a batch) and purgeTags posts /purge unsigned', async (t) => {
  const admin = await startAdmin((req) =>
    req.url === '/purge' ? { body: { purged: { kind: 'tag', tags: 2 }, soft: true, epoch: 9, took_us: 1 } } : { body: report(['workspace:w1']) },
  );
  t.after(() => admin.close());
  const c = client(admin.url);

  await c.sendEvents([{ event: 'contact:created', workspace_id: 'w1' }, moved]);
  const batch = JSON.parse(admin.requests[0].raw);
  assert.ok(Array.isArray(batch));
  assert.equal(batch.length, 2);
  assert.equal(batch[1].event, 'contact:moved');
  assert.ok(verifySignature(SECRET, admin.requests[0].headers['x-tagcache-signature'], admin.requests[0].raw).ok);

  const res = await c.purgeTags(['board:w1:b1', 'counts:w1'], { soft: true });
  assert.equal(res.purged.kind, 'tag');
  const purge = admin.requests[1];
  assert.equal(purge.url, '/purge');
  assert.deepEqual(JSON.parse(purge.raw), { tags: ['board:w1:b1', 'counts:w1'], soft: true });
  assert.equal(purge.headers['x-tagcache-signature'], undefined);
  assert.equal(purge.headers.authorization, `Bearer ${TOKEN}`);

  assert.equal(await c.sendEvents([]), null);
  assert.equal(await c.purgeTags([]), null);
  assert.equal(admin.requests.length, 2, 'empty calls make no request');
});

test('without a secret nothing is signed and bodies are sent as given', async (t) => {
  const admin = await startAdmin(() => ({ body: report(['board:w1:b1']) }));
  t.after(() => admin.close());
  await client(admin.url, { webhookSecret: undefined, token: undefined }).sendEvent(moved);
  const [r] = admin.requests;
  assert.equal(r.headers['x-tagcache-signature'], undefined);
  assert.equal(r.headers.authorization, undefined);
  assert.deepEqual(JSON.parse(r.raw), moved);
});

test('retries 503 with backoff, re-signing each attempt, then succeeds', async (t) => {
  const admin = await startAdmin((req, raw, n) =>
    n <= 2 ? { status: 503, body: { error: 'unavailable', message: 'restarting' } } : { body: report(['board:w1:b1']) },
  );
  t.after(() => admin.close());
  const logger = quietLogger();
  const res = await client(admin.url, { logger, retries: 3 }).sendEvent(moved);

  assert.deepEqual(res.tags, ['board:w1:b1']);
  assert.equal(admin.requests.length, 3);
  const sigs = admin.requests.map((r) => r.headers['x-tagcache-signature']);
  for (const [i, r] of admin.requests.entries()) assert.ok(verifySignature(SECRET, sigs[i], r.raw).ok);
  assert.equal(new Set(sigs).size, 3, 'a fresh signature per attempt (tagcache accepts each once)');
  assert.equal(logger.warnings.length, 2);
  const delays = logger.warnings.map((w) => w.info.delayMs);
  assert.ok(delays[0] >= 2 && delays[0] <= 5, `first delay in [base/2, base]: ${delays[0]}`);
  assert.ok(delays[1] >= 5 && delays[1] <= 10, `second delay doubled: ${delays[1]}`);
  assert.match(logger.warnings[0].msg, /503 unavailable: restarting/);
});

test('with nonce: false the body is sent as given and retries move the timestamp instead', async (t) => {
  const admin = await startAdmin((req, raw, n) => (n <= 2 ? { status: 503, body: {} } : { body: report([]) }));
  t.after(() => admin.close());
  await client(admin.url, { nonce: false }).sendEvent(moved);
  assert.equal(admin.requests.length, 3);
  const ts = admin.requests.map((r) => {
    assert.deepEqual(JSON.parse(r.raw), moved);
    const v = verifySignature(SECRET, r.headers['x-tagcache-signature'], r.raw);
    assert.ok(v.ok, v.why);
    return v.t;
  });
  assert.ok(ts[0] < ts[1] && ts[1] < ts[2], `strictly increasing timestamps: ${ts}`);
});

test('gives up after `retries` retries on persistent 5xx, with the server message', async (t) => {
  const admin = await startAdmin(() => ({ status: 500, body: { error: 'internal', message: 'boom' } }));
  t.after(() => admin.close());
  await assert.rejects(client(admin.url, { retries: 2 }).sendEvent(moved), (err) => {
    assert.ok(err instanceof TagcacheError);
    assert.equal(err.status, 500);
    assert.equal(err.code, 'internal');
    assert.equal(err.attempts, 3);
    assert.match(err.message, /boom.*after 3 attempts/);
    return true;
  });
  assert.equal(admin.requests.length, 3);
});

test('never retries a 422: rejects at once with the server code, message and field', async (t) => {
  const admin = await startAdmin(() => ({
    status: 422,
    body: { error: 'unknown_event', message: 'event 0: unknown event "contact:teleported"', field: 'event' },
  }));
  t.after(() => admin.close());
  const logger = quietLogger();
  await assert.rejects(client(admin.url, { logger }).sendEvent({ ...moved, event: 'contact:teleported' }), (err) => {
    assert.ok(err instanceof TagcacheError);
    assert.equal(err.status, 422);
    assert.equal(err.code, 'unknown_event');
    assert.equal(err.field, 'event');
    assert.equal(err.retryable, false);
    assert.equal(err.attempts, 1);
    assert.match(err.message, /unknown event "contact:teleported"/);
    return true;
  });
  assert.equal(admin.requests.length, 1);
  assert.equal(logger.warnings.length, 0);
});

test('never retries 401 bad_signature either', async (t) => {
  const admin = await startAdmin(() => ({ status: 401, body: { error: 'bad_signature', message: 'signature does not match', field: 'x-tagcache-signature' } }));
  t.after(() => admin.close());
  await assert.rejects(client(admin.url).sendEvent(moved), { name: 'TagcacheError', status: 401, code: 'bad_signature' });
  assert.equal(admin.requests.length, 1);
});

test('times out each attempt', async (t) => {
  const admin = await startAdmin(() => 'hang');
  t.after(() => admin.close());
  const started = Date.now();
  await assert.rejects(client(admin.url, { timeoutMs: 150, retries: 0 }).sendEvent(moved), (err) => {
    assert.equal(err.code, 'timeout');
    assert.equal(err.status, null);
    assert.match(err.message, /no response within 150 ms/);
    return true;
  });
  const took = Date.now() - started;
  assert.ok(took >= 140 && took < 1500, `took ${took} ms`);
  assert.equal(admin.requests.length, 1);
});

test('a timed-out attempt is retried and the retry can succeed', async (t) => {
  const admin = await startAdmin((req, raw, n) => (n === 1 ? 'hang' : { body: report(['counts:w1']) }));
  t.after(() => admin.close());
  const res = await client(admin.url, { timeoutMs: 150, retries: 2 }).sendEvent({ event: 'contact:created', workspace_id: 'w1' });
  assert.deepEqual(res.tags, ['counts:w1']);
  assert.equal(admin.requests.length, 2);
});

test('network errors are retried, then reported', async () => {
  // A port that was just listening and is now closed: connection refused.
  const admin = await startAdmin(() => ({ body: {} }));
  const { url } = admin;
  await admin.close();
  const logger = quietLogger();
  await assert.rejects(client(url, { retries: 2, logger }).purgeTags(['counts:w1']), (err) => {
    assert.equal(err.code, 'network');
    assert.equal(err.attempts, 3);
    assert.match(err.message, /unreachable: .*ECONNREFUSED.*after 3 attempts/);
    return true;
  });
  assert.equal(logger.warnings.length, 2);
});

test('Retry-After on a 503 is honoured, capped by maxDelayMs', async (t) => {
  const admin = await startAdmin((req, raw, n) => (n === 1 ? { status: 503, headers: { 'retry-after': '1' }, body: {} } : { body: report([]) }));
  t.after(() => admin.close());
  const logger = quietLogger();
  await client(admin.url, { logger, maxDelayMs: 300 }).sendEvent(moved);
  assert.equal(logger.warnings[0].info.delayMs, 300);
  assert.ok(admin.requests[1].at - admin.requests[0].at >= 280);
});

test('drain() waits for calls in flight, retries included', async (t) => {
  const admin = await startAdmin((req, raw, n) => (n === 1 ? { status: 502, body: {} } : { body: report([]) }));
  t.after(() => admin.close());
  const c = client(admin.url, { baseDelayMs: 50 });
  c.sendEvent(moved);
  assert.equal(c.pending, 1);
  await c.drain();
  assert.equal(c.pending, 0);
  assert.equal(admin.requests.length, 2);
});

test('invalid input is a programming error, thrown synchronously', () => {
  const c = createTagcacheClient({ adminUrl: 'http://127.0.0.1:1', logger: null });
  assert.throws(() => c.sendEvent({ workspace_id: 'w1' }), /missing the "event" name/);
  assert.throws(() => c.sendEvent([moved]), TypeError);
  assert.throws(() => c.sendEvents(moved), TypeError);
  assert.throws(() => c.sendEvents([moved, {}]), /sendEvents\[1\]/);
  assert.throws(() => c.purgeTags('board:w1:b1'), TypeError);
  assert.throws(() => createTagcacheClient({ adminUrl: '127.0.0.1:9090' }), /adminUrl/);
  assert.throws(() => createTagcacheClient({ adminUrl: 'http://x', retries: -1 }), /retries/);
});

test('backoff grows exponentially with jitter and is capped', () => {
  const lo = () => 0;
  const hi = () => 0.999999;
  assert.equal(backoffDelay(1, 100, 2000, lo), 50);
  assert.equal(backoffDelay(1, 100, 2000, hi), 100);
  assert.equal(backoffDelay(3, 100, 2000, lo), 200);
  assert.equal(backoffDelay(3, 100, 2000, hi), 400);
  assert.equal(backoffDelay(10, 100, 2000, hi), 2000);
});
