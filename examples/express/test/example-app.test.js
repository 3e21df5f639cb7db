'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');

const { createTagcacheClient } = require('../tagcache-client');
const { createApp, createMemoryDb } = require('../example-app');
const { startAdmin, verifySignature, report, quietLogger } = require('../fixtures/fake-admin');

const SECRET = 'example-secret';

async function startBackend(t, adminHandler) {
  const admin = await startAdmin(adminHandler);
  const tagcache = createTagcacheClient({ adminUrl: admin.url, token: 'tok', webhookSecret: SECRET, baseDelayMs: 5, logger: quietLogger() });
  const db = createMemoryDb([
    { id: 'c1', workspace_id: 'w1', board_id: 'b1', column_id: 'col1', name: 'Ada' },
    { id: 'c2', workspace_id: 'w1', board_id: 'b1', column_id: 'col1', name: 'Grace' },
  ]);
  const errors = [];
  const log = { error: (m) => errors.push(m), warn() {} };
  const server = createApp({ db, tagcache, log }).listen(0);
  await new Promise((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await admin.close();
  });
  const call = (method, path, body) =>
    fetch(base + path, { method, headers: { 'content-type': 'application/json', 'x-workspace-id': 'w1' }, body: JSON.stringify(body) });
  return { admin, tagcache, db, errors, call };
}

test('a move responds without waiting for tagcache, then sends a signed contact:moved', async (t) => {
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  const { admin, tagcache, call } = await startBackend(t, async () => {
    await gate; // tagcache is slow: the write must not wait for it
    return { body: report(['board:w1:b1', 'counts:w1']) };
  });

  const res = await call('PATCH', '/api/contacts/c1/move', { board_id: 'b1', to_column_id: 'col2' });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).column_id, 'col2');
  assert.equal(tagcache.pending, 1, 'the event is still in flight after the response');

  release();
  await tagcache.drain();
  assert.equal(admin.requests.length, 1);
  const r = admin.requests[0];
  assert.equal(r.url, '/events');
  assert.ok(verifySignature(SECRET, r.headers['x-tagcache-signature'], r.raw).ok);
  const { nonce, ...event } = JSON.parse(r.raw);
  assert.deepEqual(event, {
    event: 'contact:moved',
    workspace_id: 'w1',
    board_id: 'b1',
    contact_id: 'c1',
    from_column_id: 'col1',
    to_column_id: 'col2',
  });
});

test('the event is sent only after the commit: the row is visible when tagcache hears of it', async (t) => {
  let db;
  let seenColumn;
  const ctx = await startBackend(t, async () => {
    seenColumn = await db.transaction((tx) => tx.getContact('w1', 'c2')).then((c) => c.column_id);
    return { body: report([]) };
  });
  db = ctx.db;
  await ctx.call('PATCH', '/api/contacts/c2/move', { board_id: 'b1', to_column_id: 'done' });
  await ctx.tagcache.drain();
  assert.equal(seenColumn, 'done');
});

test('a failed write sends nothing; a bulk move sends one batch', async (t) => {
  const { admin, tagcache, call } = await startBackend(t, () => ({ body: report(['board:w1:b1']) }));
  const missing = await call('PATCH', '/api/contacts/nope/move', { board_id: 'b1', to_column_id: 'col2' });
  assert.equal(missing.status, 404);
  await tagcache.drain();
  assert.equal(admin.requests.length, 0);

  const bulk = await call('POST', '/api/boards/b1/contacts/bulk-move', { contact_ids: ['c1', 'c2'], to_column_id: 'col3' });
  assert.deepEqual(await bulk.json(), { moved: 2 });
  await tagcache.drain();
  assert.equal(admin.requests.length, 1);
  const batch = JSON.parse(admin.requests[0].raw);
  assert.deepEqual(batch.map((e) => [e.event, e.contact_id, e.to_column_id]), [
    ['contact:moved', 'c1', 'col3'],
    ['contact:moved', 'c2', 'col3'],
  ]);
});

test('a 4xx from tagcache is logged with its message and never fails the request', async (t) => {
  const { admin, tagcache, errors, call } = await startBackend(t, () => ({
    status: 422,
    body: { error: 'unknown_event', message: 'event 0: unknown event "contact:created"', field: 'event' },
  }));
  const res = await call('POST', '/api/boards/b1/contacts', { name: 'Linus', column_id: 'col1' });
  assert.equal(res.status, 201);
  await tagcache.drain();
  assert.equal(admin.requests.length, 1, 'not retried');
  assert.equal(errors.length, 1);
  assert.match(errors[0], /422 unknown_event: event 0: unknown event "contact:created" \(field: event\)/);
});
