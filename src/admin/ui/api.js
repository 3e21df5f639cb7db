// The admin API as the page calls it: the token kept in this tab's
// sessionStorage, sent as a Bearer token on every call.

const KEY = "tagcache.admin.token";

/** The token of this tab, or null before sign-in. */
export function token() {
  return sessionStorage.getItem(KEY);
}

/** Keeps `value` for this tab. */
export function keepToken(value) {
  sessionStorage.setItem(KEY, value);
}

/** Forgets the token. */
export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

/**
 * One call to the admin API. Resolves to {status, ok, json, text}; a network
 * failure resolves to status 0, and a 401 for the kept token signs the page
 * out (the "tagcache:unauthorized" event). `tokenOverride` is used at sign-in, before
 * the token is kept.
 */
export async function call(method, path, body, tokenOverride) {
  const bearer = tokenOverride ?? token();
  if (!bearer) {
    return { status: 401, ok: false, json: null, text: "not signed in" };
  }
  const init = {
    method,
    headers: { authorization: `Bearer ${bearer}` },
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
  };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { status: 0, ok: false, json: null, text: String(e.message || e) };
  }
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  if (res.status === 401 && tokenOverride === undefined) {
    // The kept token no longer works (changed on the server): sign out.
    document.dispatchEvent(new CustomEvent("tagcache:unauthorized"));
  }
  return { status: res.status, ok: res.ok, json, text };
}
