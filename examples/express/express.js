'use strict';

// Express glue for the tagcache client: send an event once a write is
// committed, without holding up the response.
//
//   const { createTagcacheClientFromEnv } = require('@tagcache/client');
//   const { tagcacheEvents } = require('@tagcache/client/express');
//   app.use(tagcacheEvents(createTagcacheClientFromEnv()));
//   app.patch('/api/contacts/:id/move', async (req, res) => {
//     const moved = await db.transaction(...);          // COMMIT has returned
//     req.tagcache.afterCommit({ event: 'contact:moved', workspace_id, board_id });
//     res.json(moved);
//   });

/**
 * Sends an event (or a batch, given an array) once the write is committed,
 * without delaying the response: the call is not awaited by the caller.
 * A failure is logged with `log.error`, never thrown at the request: the
 * entries then live until their TTL, the worst case tagcache promises anyway.
 * Resolves tagcache's report, or undefined when the call failed for good.
 */
function notifyAfterCommit(tagcache, eventOrEvents, log = console) {
  const send = Array.isArray(eventOrEvents) ? tagcache.sendEvents(eventOrEvents) : tagcache.sendEvent(eventOrEvents);
  return send.catch((err) => {
    // 4xx (err.status 400-499): a bug, e.g. an event name missing from tagcache's
    // `events:` config or a missing field; err.message carries tagcache's explanation.
    log.error(`[tagcache] ${err.message}`);
    return undefined;
  });
}

/**
 * Middleware that gives every request `req.tagcache`:
 * - `afterCommit(eventOrEvents)`: notifyAfterCommit with this client and logger;
 *   call it after COMMIT has returned, never inside the transaction;
 * - `client`: the client itself (sendEvent, sendEvents, purgeTags, drain).
 */
function tagcacheEvents(tagcache, { log = console } = {}) {
  if (!tagcache || typeof tagcache.sendEvent !== 'function') {
    throw new TypeError('tagcacheEvents: expected a client from createTagcacheClient()');
  }
  return function tagcacheEventsMiddleware(req, _res, next) {
    req.tagcache = {
      client: tagcache,
      afterCommit: (eventOrEvents) => notifyAfterCommit(tagcache, eventOrEvents, log),
    };
    next();
  };
}

module.exports = { notifyAfterCommit, tagcacheEvents };
