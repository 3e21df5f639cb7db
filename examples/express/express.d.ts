// Type declarations of express.js (hand-written; the package has no build step).

import type { PurgeReport, TagcacheClient, TagcacheEvent } from './tagcache-client';

export interface ErrorLogger {
  error(message: string): void;
}

/** What tagcacheEvents puts on each request as `req.tagcache`. */
export interface RequestTagcache {
  client: TagcacheClient;
  /** Sends once the write is committed; do not await it in the request. Never rejects. */
  afterCommit(eventOrEvents: TagcacheEvent | TagcacheEvent[]): Promise<PurgeReport | null | undefined>;
}

/**
 * Sends an event (or a batch) without delaying the response; a failure is
 * logged with `log.error` and resolves undefined.
 */
export function notifyAfterCommit(
  tagcache: TagcacheClient,
  eventOrEvents: TagcacheEvent | TagcacheEvent[],
  log?: ErrorLogger,
): Promise<PurgeReport | null | undefined>;

/** Express middleware that sets `req.tagcache` (see RequestTagcache). */
export function tagcacheEvents(
  tagcache: TagcacheClient,
  options?: { log?: ErrorLogger },
): (req: { tagcache?: RequestTagcache }, res: unknown, next: (err?: unknown) => void) => void;

declare global {
  namespace Express {
    interface Request {
      /** Set by the tagcacheEvents middleware of @tagcache/client/express, on every request after it. */
      tagcache: RequestTagcache;
    }
  }
}
