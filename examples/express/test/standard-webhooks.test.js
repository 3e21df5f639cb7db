'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { createTagcacheClient, signStandard } = require('../tagcache-client');
const { startAdmin, verifyStandard, report, quietLogger } = require('../fixtures/fake-admin');

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const moved = { event: 'contact:moved', workspace_id: 'w1', board_id: 'b1' };

function client(url, extra = {}) {
  return createTagcacheClient({
    adminUrl: url,
    token: 'tok',
    webhookSecret: SECRET,
    signatureScheme: 'standard-webhooks',
    baseDelayMs: 5,
    maxDelayMs: 20,
    logger: quietLogger(),
    ...extra,
  });
}

test('signStandard(): the Standard Webhooks example vector, and a plain secret used as its bytes', () => {
  const h = signStandard(SECRET, '{"test": 2432232314}', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330);
  assert.deepEqual(h, {
    'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    'webhook-timestamp': '1614265330',
    'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  });
  const plain = signStandard('s3cret', '{}', 'msg_1', 1800000000);
  const mac = crypto.createHmac('sha256', 's3cret').update('msg_1.1800000000.{}').digest('base64');
  assert.equal(plain['webhook-signature'], `v1,${mac}`);
});

test('with signatureScheme "standard-webhooks", events carry webhook-* headers a receiver verifies', async (t) => {
  const admin = await startAdmin((req, raw) => {
    const v = verifyStandard(SECRET, req.headers, raw);
    if (!v.ok) return { status: 401, body: { error: 'bad_signature', message: v.why } };
    return { body: report(['board:w1:b1']) };
  });
  t.after(() => admin.close());

  const res = await client(admin.url).sendEvent(moved);
  assert.deepEqual(res.tags, ['board:w1:b1']);
  const [r] = admin.requests;
  assert.match(r.headers['webhook-id'], /^msg_[0-9a-f-]{36}$/);
  assert.ok(Math.abs(Number(r.headers['webhook-timestamp']) - Date.now() / 1000) < 5);
  assert.match(r.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]{43}=$/);
  assert.equal(r.headers['x-tagcache-signature'], undefined);
  assert.equal(r.headers.authorization, 'Bearer tok');
  // The id makes each signature unique: the body is sent as given, no nonce.
  assert.deepEqual(JSON.parse(r.raw), moved);
  // Another secret does not verify: the MAC covers id, timestamp and body.
  assert.equal(verifyStandard('whsec_b3RoZXI=', r.headers, r.raw).ok, false);
  assert.equal(verifyStandard(SECRET, r.headers, r.raw.replace('b1', 'b2')).ok, false);
});

test('every retry is signed with a fresh webhook-id', async (t) => {
  const admin = await startAdmin((req, raw, n) => {
    assert.ok(verifyStandard(SECRET, req.headers, raw).ok);
    return n < 3 ? { status: 503, body: { error: 'unavailable' } } : { body: report([]) };
  });
  t.after(() => admin.close());

  await client(admin.url).sendEvents([moved, { ...moved, board_id: 'b2' }]);
  assert.equal(admin.requests.length, 3);
  const ids = admin.requests.map((r) => r.headers['webhook-id']);
  assert.equal(new Set(ids).size, 3);
  const sigs = admin.requests.map((r) => r.headers['webhook-signature']);
  assert.equal(new Set(sigs).size, 3);
  assert.equal(admin.requests[0].raw, admin.requests[2].raw, 'the same body every time');
});

test('the default scheme is unchanged; an unknown scheme is refused', async (t) => {
  const admin = await startAdmin(() => ({ body: report([]) }));
  t.after(() => admin.close());
  await client(admin.url, { signatureScheme: undefined }).sendEvent(moved);
  const [r] = admin.requests;
  assert.match(r.headers['x-tagcache-signature'], /^t=\d+,v1=[0-9a-f]{64}$/);
  assert.equal(r.headers['webhook-signature'], undefined);
  assert.equal(typeof JSON.parse(r.raw).nonce, 'string');
  assert.throws(() => client(admin.url, { signatureScheme: 'svix' }), /signatureScheme must be one of tagcache, standard-webhooks/);
});
