'use strict';

// A dependency-free client for tagcache's admin API (Node >= 18: global fetch, node:crypto).
//
//   const { createTagcacheClient } = require('./tagcache-client');
//   const tagcache = createTagcacheClient({
//     adminUrl: 'http://127.0.0.1:9090',
//     token: process.env.TAGCACHE_ADMIN_TOKEN,
//     webhookSecret: process.env.TAGCACHE_WEBHOOK_SECRET, // optional
//     // signatureScheme: 'standard-webhooks',             // optional, see below
//   });
//   await tagcache.sendEvent({ event: 'contact:moved', workspace_id: 'w1', board_id: 'b1' });
//
// Failure policy:
// - network errors, timeouts and 5xx are retried with exponential backoff and
//   jitter, `retries` times after the first attempt, each attempt bounded by
//   `timeoutMs`; every attempt is signed afresh (tagcache accepts a signature once);
// - 4xx are never retried: they mean the request itself is wrong (bad token,
//   unknown event, missing field, bad signature...). They reject at once with a
//   TagcacheError carrying the server's `error` code, `message` and `field`.

const crypto = require('node:crypto');

const VERSION = '0.1.0';

/** An admin API call that failed for good. */
class TagcacheError extends Error {
  /**
   * @param {string} message
   * @param {object} info
   * @param {number|null} info.status   HTTP status, or null when no response came back
   * @param {string} info.code          server error code (`unknown_event`, `bad_signature`...),
   *                                    or `timeout` / `network` / `http_<status>`
   * @param {string} [info.field]       the field or header the server blamed
   * @param {string} [info.serverMessage]
   * @param {number} info.attempts      attempts made
   * @param {boolean} info.retryable    whether the last failure was a retryable kind
   * @param {string} info.path          admin path called
   * @param {unknown} [info.cause]
   */
  constructor(message, info) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.name = 'TagcacheError';
    this.status = info.status;
    this.code = info.code;
    this.field = info.field;
    this.serverMessage = info.serverMessage;
    this.attempts = info.attempts;
    this.retryable = info.retryable;
    this.path = info.path;
  }
}

/**
 * The `X-Tagcache-Signature` value for `body`:
 * `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 * `body` must be the exact bytes sent.
 */
function sign(secret, body, t = Math.floor(Date.now() / 1000)) {
  const v1 = crypto.createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex');
  return `t=${t},v1=${v1}`;
}

/**
 * The HMAC key of a Standard Webhooks secret: `whsec_<base64>` is the base64
 * decoding of what follows the prefix (the specification's format); any other
 * secret is used as its UTF-8 bytes, as tagcache's own scheme uses it.
 */
function standardKey(secret) {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
}

/**
 * The Standard Webhooks headers for `body`: `webhook-id`, `webhook-timestamp`
 * and `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
 * `body` must be the exact bytes sent.
 */
function signStandard(secret, body, id = `msg_${crypto.randomUUID()}`, t = Math.floor(Date.now() / 1000)) {
  const mac = crypto.createHmac('sha256', standardKey(secret)).update(`${id}.${t}.`).update(body).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(t), 'webhook-signature': `v1,${mac}` };
}

const SCHEMES = ['tagcache', 'standard-webhooks'];

/** Backoff before retry number `retry` (1-based): base * 2^(retry-1), capped, with "equal jitter". */
function backoffDelay(retry, baseDelayMs, maxDelayMs, random = Math.random) {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (retry - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Retry-After in ms (delta-seconds or HTTP date), or 0. */
function retryAfterMs(header) {
  if (!header) return 0;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : 0;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function assertEvent(event, where) {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new TypeError(`${where}: an event must be an object like { event: 'contact:moved', workspace_id, board_id }`);
  }
  if (typeof event.event !== 'string' || event.event === '') {
    throw new TypeError(`${where}: missing the "event" name (e.g. 'contact:moved')`);
  }
}

/**
 * @param {object} options
 * @param {string} options.adminUrl          e.g. http://127.0.0.1:9090 (a base path is kept)
 * @param {string} [options.token]           admin Bearer token (admin.token)
 * @param {string} [options.webhookSecret]   admin.webhook_secret: signs /events bodies
 * @param {'tagcache'|'standard-webhooks'} [options.signatureScheme='tagcache']
 *                                           `X-Tagcache-Signature`, or the Standard Webhooks
 *                                           headers (webhook-id, webhook-timestamp, webhook-signature)
 * @param {number} [options.retries=3]       retries after the first attempt (network, timeout, 5xx)
 * @param {number} [options.timeoutMs=2000]  limit of each attempt, response body included
 * @param {number} [options.baseDelayMs=100] first backoff; doubles per retry
 * @param {number} [options.maxDelayMs=2000] backoff cap (also caps Retry-After)
 * @param {boolean} [options.nonce]          add a random `nonce` field to signed event
 *                                           bodies (default: true when signing with the
 *                                           tagcache scheme), see below
 * @param {{warn: Function}|null} [options.logger=console]  retries are logged with warn;
 *                                           final failures are thrown, not logged
 * @param {typeof fetch} [options.fetch=globalThis.fetch]
 */
function createTagcacheClient(options = {}) {
  const {
    adminUrl,
    token,
    webhookSecret,
    signatureScheme = 'tagcache',
    retries = 3,
    timeoutMs = 2000,
    baseDelayMs = 100,
    maxDelayMs = 2000,
    logger = console,
    fetch: fetchImpl = globalThis.fetch,
  } = options;
  if (!SCHEMES.includes(signatureScheme)) {
    throw new TypeError(`tagcache: signatureScheme must be one of ${SCHEMES.join(', ')}, got ${JSON.stringify(signatureScheme)}`);
  }
  const standard = signatureScheme === 'standard-webhooks';
  // A Standard Webhooks signature covers a fresh webhook-id, so identical
  // bodies already sign differently: no nonce is needed there.
  const addNonce = options.nonce ?? (Boolean(webhookSecret) && !standard);

  if (typeof adminUrl !== 'string' || !/^https?:\/\/[^/]/.test(adminUrl)) {
    throw new TypeError(`tagcache: adminUrl must be an http(s) URL such as http://127.0.0.1:9090, got ${JSON.stringify(adminUrl)}`);
  }
  if (typeof fetchImpl !== 'function') {
    throw new TypeError('tagcache: no fetch available (Node >= 18 is required, or pass options.fetch)');
  }
  if (!Number.isInteger(retries) || retries < 0) throw new TypeError('tagcache: retries must be an integer >= 0');
  if (!(timeoutMs > 0)) throw new TypeError('tagcache: timeoutMs must be > 0');
  const base = adminUrl.replace(/\/+$/, '');
  const log = logger || { warn() {} };
  const inFlight = new Set();

  /** One attempt: resolves { status, body, headers } or rejects with a network/timeout error. */
  async function attempt(path, bodyText, signatureHeaders) {
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': `tagcache-client-node/${VERSION}`,
    };
    if (token) headers.authorization = `Bearer ${token}`;
    if (signatureHeaders) Object.assign(headers, signatureHeaders);

    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const res = await fetchImpl(base + path, {
        method: 'POST',
        headers,
        body: bodyText,
        signal: controller.signal,
      });
      const text = await res.text(); // still under the same timeout
      let body = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = { message: text.slice(0, 500) };
      }
      return { status: res.status, body, headers: res.headers };
    } catch (err) {
      if (controller.signal.aborted) {
        const e = new Error(`no response within ${timeoutMs} ms`);
        e.kind = 'timeout';
        e.cause = err;
        throw e;
      }
      err.kind = 'network';
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  // `payload()` builds the body of each attempt (signed event bodies get a fresh nonce).
  async function post(path, payload, { signed = false } = {}) {
    const attempts = retries + 1;
    let lastT = 0;
    let lastBody;
    for (let n = 1; ; n++) {
      let failure;
      let wait = 0;
      const bodyText = JSON.stringify(payload());
      let signature;
      if (signed && webhookSecret && standard) {
        // A fresh webhook-id per attempt, for the same reason as below: an
        // attempt that timed out may have been accepted, and tagcache accepts
        // each signature once. A purge applied twice purges the same entries.
        signature = signStandard(webhookSecret, bodyText);
      } else if (signed && webhookSecret) {
        // A fresh signature per attempt: tagcache accepts each signature once,
        // and an attempt that timed out may well have been accepted. A new nonce
        // (or, when the body repeats, a later timestamp) keeps a retry
        // from being refused as a replay of the attempt before it.
        const now = Math.floor(Date.now() / 1000);
        lastT = bodyText === lastBody ? Math.max(now, lastT + 1) : now;
        lastBody = bodyText;
        signature = { 'x-tagcache-signature': sign(webhookSecret, bodyText, lastT) };
      }
      try {
        const res = await attempt(path, bodyText, signature);
        if (res.status >= 200 && res.status < 300) return res.body;
        const b = res.body && typeof res.body === 'object' ? res.body : {};
        const code = typeof b.error === 'string' ? b.error : `http_${res.status}`;
        const serverMessage = typeof b.message === 'string' ? b.message : undefined;
        const info = {
          status: res.status,
          code,
          field: typeof b.field === 'string' ? b.field : undefined,
          serverMessage,
          attempts: n,
          path,
        };
        const detail = `${res.status} ${code}${serverMessage ? `: ${serverMessage}` : ''}${info.field ? ` (field: ${info.field})` : ''}`;
        if (res.status < 500) {
          // A 4xx is a bug in the request or the config: retrying cannot help.
          throw new TagcacheError(`tagcache ${path} refused the request: ${detail}`, { ...info, retryable: false });
        }
        failure = new TagcacheError(`tagcache ${path} failed: ${detail}`, { ...info, retryable: true });
        wait = retryAfterMs(res.headers.get('retry-after'));
      } catch (err) {
        if (err instanceof TagcacheError) {
          if (!err.retryable) throw err;
          failure = err;
        } else if (err && (err.kind === 'timeout' || err.kind === 'network')) {
          failure = new TagcacheError(`tagcache ${path} unreachable: ${err.message}${err.cause && (err.cause.code || err.cause.message) ? ` (${err.cause.code || err.cause.message})` : ''}`, {
            status: null,
            code: err.kind,
            attempts: n,
            retryable: true,
            path,
            cause: err,
          });
        } else {
          throw err;
        }
      }
      if (n >= attempts) {
        failure.attempts = n;
        if (n > 1) failure.message += ` (after ${n} attempts)`;
        throw failure;
      }
      const delay = Math.min(maxDelayMs, Math.max(wait, backoffDelay(n, baseDelayMs, maxDelayMs)));
      log.warn(`${failure.message}; retry ${n}/${retries} in ${delay} ms`, { attempt: n, delayMs: delay, code: failure.code });
      await sleep(delay);
    }
  }

  function track(promise) {
    inFlight.add(promise);
    const done = () => inFlight.delete(promise);
    promise.then(done, done);
    return promise;
  }

  // Why a nonce: the signature covers only "<t>.<body>" and tagcache refuses a
  // signature it has already seen. Two identical events in the same second
  // (the same contact moved twice on a board, or a retry) would sign
  // identically and the second, legitimate purge would be refused as a replay.
  // Fields that no `events:` template uses are ignored by tagcache, so a random
  // `nonce` makes every body unique without changing what is purged. A `nonce`
  // the caller set is kept (then a retry falls back to a later timestamp).
  const withNonce = (event) => (addNonce && event.nonce === undefined ? { ...event, nonce: crypto.randomBytes(8).toString('hex') } : event);

  return {
    /**
     * Sends one event to POST /events. Resolves the report
     * `{ purged: { kind, tags }, soft, epoch, took_us, tags: [...] }`.
     */
    sendEvent(event) {
      assertEvent(event, 'sendEvent');
      return track(post('/events', () => withNonce(event), { signed: true }));
    },

    /**
     * Sends a batch to POST /events, applied all or nothing by tagcache.
     * Resolves the report, or null for an empty batch (no request made).
     */
    sendEvents(events) {
      if (!Array.isArray(events)) throw new TypeError('sendEvents: expected an array of events');
      events.forEach((e, i) => assertEvent(e, `sendEvents[${i}]`));
      if (events.length === 0) return Promise.resolve(null);
      const batch = events.slice();
      return track(post('/events', () => (addNonce ? [withNonce(batch[0]), ...batch.slice(1)] : batch), { signed: true }));
    },

    /**
     * Purges tags through POST /purge (`soft: true` marks entries stale instead
     * of dropping them). Resolves the report, or null for no tags.
     */
    purgeTags(tags, { soft = false } = {}) {
      if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t === '')) {
        throw new TypeError('purgeTags: expected an array of non-empty tag strings');
      }
      if (tags.length === 0) return Promise.resolve(null);
      const body = { tags: tags.slice(), soft: Boolean(soft) };
      return track(post('/purge', () => body));
    },

    /** Waits for every call still in flight (retries included); for graceful shutdown. */
    async drain() {
      while (inFlight.size > 0) {
        await Promise.allSettled([...inFlight]);
      }
    },

    /** Calls in flight. */
    get pending() {
      return inFlight.size;
    },
  };
}

/**
 * A client configured from the environment: TAGCACHE_ADMIN_URL (default
 * http://127.0.0.1:9090), TAGCACHE_ADMIN_TOKEN, TAGCACHE_WEBHOOK_SECRET,
 * TAGCACHE_SIGNATURE_SCHEME (`tagcache`, the default, or `standard-webhooks`).
 */
function createTagcacheClientFromEnv(env = process.env, overrides = {}) {
  return createTagcacheClient({
    adminUrl: env.TAGCACHE_ADMIN_URL || 'http://127.0.0.1:9090',
    token: env.TAGCACHE_ADMIN_TOKEN || undefined,
    webhookSecret: env.TAGCACHE_WEBHOOK_SECRET || undefined,
    signatureScheme: env.TAGCACHE_SIGNATURE_SCHEME || undefined,
    ...overrides,
  });
}

module.exports = {
  createTagcacheClient,
  createTagcacheClientFromEnv,
  TagcacheError,
  sign,
  signStandard,
  backoffDelay,
};
