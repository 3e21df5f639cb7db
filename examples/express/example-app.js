'use strict';

// Express write handlers that tell tagcache what changed, after the commit.
//
//   TAGCACHE_ADMIN_TOKEN=... TAGCACHE_WEBHOOK_SECRET=... node example-app.js
//   curl -X PATCH localhost:3000/api/contacts/c1/move \
//        -H 'X-Workspace-ID: w1' -H 'content-type: application/json' \
//        -d '{"board_id":"b1","to_column_id":"col2"}'
//
// It uses Express when installed (`npm install express`), else a tiny stand-in
// with the same surface so that the example runs with no dependencies. The
// database is an in-memory stand-in with a transaction() like pg's BEGIN/COMMIT.

const { createTagcacheClientFromEnv } = require('./tagcache-client');
const { notifyAfterCommit, tagcacheEvents } = require('./express');

/** The workspace of the request: in production, the verified JWT claim. */
function workspaceOf(req) {
  return (req.user && req.user.workspace_id) || req.get('X-Workspace-ID');
}

/** Mounts the write routes on an Express app (or router). */
function mountContactRoutes(app, { db, tagcache, log = console }) {
  // req.tagcache.afterCommit(event): sent once committed, not awaited, failures logged.
  app.use(tagcacheEvents(tagcache, { log }));

  // Move a contact to another column of its board.
  app.patch('/api/contacts/:contactId/move', async (req, res, next) => {
    try {
      const workspaceId = workspaceOf(req);
      const { board_id: boardId, to_column_id: toColumnId } = req.body || {};
      if (!workspaceId || !boardId || !toColumnId) {
        return res.status(400).json({ error: 'board_id and to_column_id are required' });
      }
      const moved = await db.transaction(async (tx) => {
        const contact = await tx.getContact(workspaceId, req.params.contactId);
        if (!contact || contact.board_id !== boardId) return null;
        const fromColumnId = contact.column_id;
        await tx.updateContact(workspaceId, contact.id, { column_id: toColumnId });
        return { ...contact, column_id: toColumnId, from_column_id: fromColumnId };
      }); // <- COMMIT has returned here: the new row is visible to every reader.
      if (!moved) return res.status(404).json({ error: 'no such contact on this board' });

      // Only now purge: any cached page filled from the old data is dropped,
      // and every refill starts after the commit. Not awaited.
      req.tagcache.afterCommit({
        event: 'contact:moved',
        workspace_id: workspaceId,
        board_id: boardId,
        contact_id: moved.id,
        from_column_id: moved.from_column_id,
        to_column_id: toColumnId,
      });
      return res.json(moved);
    } catch (err) {
      return next(err); // rolled back: nothing changed, nothing to purge
    }
  });

  // Create a contact.
  app.post('/api/boards/:boardId/contacts', async (req, res, next) => {
    try {
      const workspaceId = workspaceOf(req);
      const { name, column_id: columnId } = req.body || {};
      if (!workspaceId || !name || !columnId) {
        return res.status(400).json({ error: 'name and column_id are required' });
      }
      const contact = await db.transaction((tx) =>
        tx.insertContact(workspaceId, { name, board_id: req.params.boardId, column_id: columnId }),
      );
      req.tagcache.afterCommit({ event: 'contact:created', workspace_id: workspaceId, board_id: contact.board_id, contact_id: contact.id });
      return res.status(201).json(contact);
    } catch (err) {
      return next(err);
    }
  });

  // Move many contacts at once: one batch, purged all or nothing.
  app.post('/api/boards/:boardId/contacts/bulk-move', async (req, res, next) => {
    try {
      const workspaceId = workspaceOf(req);
      const { contact_ids: ids, to_column_id: toColumnId } = req.body || {};
      if (!workspaceId || !Array.isArray(ids) || !toColumnId) {
        return res.status(400).json({ error: 'contact_ids and to_column_id are required' });
      }
      const boardId = req.params.boardId;
      const moved = await db.transaction(async (tx) => {
        const out = [];
        for (const id of ids) {
          const c = await tx.getContact(workspaceId, id);
          if (c && c.board_id === boardId) {
            await tx.updateContact(workspaceId, id, { column_id: toColumnId });
            out.push({ id, from_column_id: c.column_id });
          }
        }
        return out;
      });
      if (moved.length > 0) {
        req.tagcache.afterCommit(
          moved.map((m) => ({
            event: 'contact:moved',
            workspace_id: workspaceId,
            board_id: boardId,
            contact_id: m.id,
            from_column_id: m.from_column_id,
            to_column_id: toColumnId,
          })),
        );
      }
      return res.json({ moved: moved.length });
    } catch (err) {
      return next(err);
    }
  });
}

/** An in-memory stand-in for the database: writes become visible at commit. */
function createMemoryDb(seed = []) {
  const rows = new Map(seed.map((c) => [`${c.workspace_id}/${c.id}`, { ...c }]));
  let nextId = 1;
  return {
    async transaction(work) {
      const pending = new Map();
      const tx = {
        async getContact(ws, id) {
          const key = `${ws}/${id}`;
          const row = pending.get(key) || rows.get(key);
          return row ? { ...row } : null;
        },
        async updateContact(ws, id, patch) {
          const key = `${ws}/${id}`;
          pending.set(key, { ...(pending.get(key) || rows.get(key)), ...patch });
        },
        async insertContact(ws, fields) {
          const row = { id: `c${nextId++}`, workspace_id: ws, ...fields };
          pending.set(`${ws}/${row.id}`, row);
          return { ...row };
        },
      };
      const result = await work(tx); // a throw here is a ROLLBACK: `pending` is dropped
      for (const [k, v] of pending) rows.set(k, v); // COMMIT
      return result;
    },
  };
}

/**
 * Just enough of Express for this file when Express is not installed:
 * app.use(middleware), app.get/post/patch with :params, JSON bodies, req.get,
 * res.status/json, next(err).
 */
function miniExpress() {
  const http = require('node:http');
  const routes = [];
  const middlewares = [];
  const add = (method) => (pattern, handler) => {
    const names = [];
    const re = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, n) => (names.push(n), '([^/]+)'))}$`);
    routes.push({ method, re, names, handler });
  };
  const app = { get: add('GET'), post: add('POST'), patch: add('PATCH'), use: (mw) => middlewares.push(mw) };
  app.listen = (port, cb) =>
    http
      .createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
          res.status = (code) => ((res.statusCode = code), res);
          res.json = (v) => {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify(v));
            return res;
          };
          req.get = (name) => req.headers[name.toLowerCase()];
          const raw = Buffer.concat(chunks).toString();
          try {
            req.body = raw ? JSON.parse(raw) : {};
          } catch {
            return res.status(400).json({ error: 'invalid JSON' });
          }
          // Middlewares here call next() synchronously (tagcacheEvents does).
          for (const mw of middlewares) mw(req, res, () => {});
          const path = new URL(req.url, 'http://x').pathname;
          for (const r of routes) {
            const m = r.method === req.method && r.re.exec(path);
            if (!m) continue;
            req.params = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
            return r.handler(req, res, (err) => {
              console.error(err);
              res.status(500).json({ error: 'internal error' });
            });
          }
          return res.status(404).json({ error: 'not found' });
        });
      })
      .listen(port, cb);
  return app;
}

function createApp({ db, tagcache, log = console } = {}) {
  let app;
  try {
    const express = require('express'); // eslint-disable-line global-require
    app = express();
    app.use(express.json());
  } catch {
    app = miniExpress();
  }
  mountContactRoutes(app, { db, tagcache, log });
  return app;
}

if (require.main === module) {
  const tagcache = createTagcacheClientFromEnv();
  const db = createMemoryDb([{ id: 'c1', workspace_id: 'w1', board_id: 'b1', column_id: 'col1', name: 'Ada' }]);
  const port = Number(process.env.PORT || 3000);
  const server = createApp({ db, tagcache }).listen(port, () => console.log(`example backend on :${port}`));
  process.on('SIGTERM', () => {
    // Let queued purges (and their retries) finish before exiting.
    server.close();
    tagcache.drain().then(() => process.exit(0));
  });
}

module.exports = { mountContactRoutes, notifyAfterCommit, createMemoryDb, createApp, miniExpress };
