'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');

const { createTagcacheClient } = require('../tagcache-client');
const { notifyAfterCommit, tagcacheEvents } = require('../express');
const { startAdmin, report, quietLogger } = require('../fixtures/fake-admin');

function setup(t, handler) {
  return startAdmin(handler).then((admin) => {
    t.after(() => admin.close());
    const tagcache = createTagcacheClient({ adminUrl: admin.url, token: 'tok', retries: 0, logger: quietLogger() });
    return { admin, tagcache };
  });
}

test('tagcacheEvents gives the request afterCommit, which sends without being awaited', async (t) => {
  const { admin, tagcache } = await setup(t, () => ({ body: report(['counts:w1']) }));
  const errors = [];
  const mw = tagcacheEvents(tagcache, { log: { error: (m) => errors.push(m) } });
  const req = {};
  let nexted = false;
  mw(req, {}, () => (nexted = true));
  assert.ok(nexted);
  assert.equal(req.tagcache.client, tagcache);
  const sent = req.tagcache.afterCommit({ event: 'contact:created', workspace_id: 'w1' });
  assert.equal(tagcache.pending, 1);
  assert.deepEqual((await sent).tags, ['counts:w1']);
  assert.equal(JSON.parse(admin.requests[0].raw).event, 'contact:created');
  assert.deepEqual(errors, []);
});

test('a refused event is logged and never rejects', async (t) => {
  const { tagcache } = await setup(t, () => ({ status: 422, body: { error: 'missing_field', message: 'no board_id', field: 'board_id' } }));
  const errors = [];
  const out = await notifyAfterCommit(tagcache, [{ event: 'contact:moved', workspace_id: 'w1' }], { error: (m) => errors.push(m) });
  assert.equal(out, undefined);
  assert.equal(errors.length, 1);
  assert.match(errors[0], /^\[tagcache\] tagcache \/events refused the request: 422 missing_field: no board_id \(field: board_id\)$/);
});

test('tagcacheEvents refuses something that is not a client', () => {
  assert.throws(() => tagcacheEvents({}), /expected a client/);
});
