// Type declarations of tagcache-client.js (hand-written; the package has no build step).

/** What tagcache answers to a purge or an event. */
export interface PurgeReport {
  purged: { kind: string; tags: number };
  soft: boolean;
  epoch: number;
  took_us: number;
  tags: string[];
  [field: string]: unknown;
}

/**
 * An event for POST /events: its name and the fields its `events:` templates
 * use (`workspace_id`, `board_id`, ...). Fields no template uses are ignored.
 */
export interface TagcacheEvent {
  event: string;
  soft?: boolean;
  [field: string]: string | number | boolean | null | undefined;
}

export type SignatureScheme = 'tagcache' | 'standard-webhooks';

export interface TagcacheClientOptions {
  /** The admin listener, e.g. `http://127.0.0.1:9090` (a base path is kept). */
  adminUrl: string;
  /** The admin Bearer token (`admin.token`). */
  token?: string;
  /** `admin.webhook_secret`: signs /events bodies. */
  webhookSecret?: string;
  /**
   * `tagcache` (default): `X-Tagcache-Signature: t=<unix>,v1=<hex HMAC>`.
   * `standard-webhooks`: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC>`.
   */
  signatureScheme?: SignatureScheme;
  /** Retries after the first attempt (network errors, timeouts, 5xx). Default 3. */
  retries?: number;
  /** Limit of each attempt, response body included. Default 2000. */
  timeoutMs?: number;
  /** First backoff; doubles per retry. Default 100. */
  baseDelayMs?: number;
  /** Backoff cap, also caps Retry-After. Default 2000. */
  maxDelayMs?: number;
  /** Add a random `nonce` field to signed event bodies. Default: true when signing with the tagcache scheme. */
  nonce?: boolean;
  /** Retries are logged with `warn`; null silences them. Default `console`. */
  logger?: { warn(message: string, info?: unknown): void } | null;
  /** Default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

export interface TagcacheClient {
  /** POST /events with one event. */
  sendEvent(event: TagcacheEvent): Promise<PurgeReport>;
  /** POST /events with a batch, applied all or nothing; null for an empty batch (no request). */
  sendEvents(events: TagcacheEvent[]): Promise<PurgeReport | null>;
  /** POST /purge; `soft` marks entries stale instead of dropping them. Null for no tags (no request). */
  purgeTags(tags: string[], options?: { soft?: boolean }): Promise<PurgeReport | null>;
  /** Waits for every call still in flight (retries included). */
  drain(): Promise<void>;
  /** Calls in flight. */
  readonly pending: number;
}

/** An admin API call that failed for good. */
export class TagcacheError extends Error {
  name: 'TagcacheError';
  /** HTTP status, or null when no response came back. */
  status: number | null;
  /** The server's error code (`unknown_event`, `bad_signature`, ...), or `timeout`, `network`, `http_<status>`. */
  code: string;
  /** The field or header the server blamed. */
  field?: string;
  serverMessage?: string;
  attempts: number;
  /** Whether the last failure was of a retryable kind (network, timeout, 5xx). */
  retryable: boolean;
  /** The admin path called. */
  path: string;
}

export function createTagcacheClient(options: TagcacheClientOptions): TagcacheClient;

/**
 * A client from TAGCACHE_ADMIN_URL (default http://127.0.0.1:9090),
 * TAGCACHE_ADMIN_TOKEN, TAGCACHE_WEBHOOK_SECRET and TAGCACHE_SIGNATURE_SCHEME.
 */
export function createTagcacheClientFromEnv(
  env?: Record<string, string | undefined>,
  overrides?: Partial<TagcacheClientOptions>,
): TagcacheClient;

/** `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; `body` must be the exact bytes sent. */
export function sign(secret: string, body: string, t?: number): string;

/**
 * Standard Webhooks headers for `body`. A `whsec_<base64>` secret is base64-decoded,
 * any other is used as its UTF-8 bytes.
 */
export function signStandard(
  secret: string,
  body: string,
  id?: string,
  t?: number,
): { 'webhook-id': string; 'webhook-timestamp': string; 'webhook-signature': string };

/** Backoff before retry number `retry` (1-based): exponential, capped, with jitter. */
export function backoffDelay(retry: number, baseDelayMs: number, maxDelayMs: number, random?: () => number): number;
