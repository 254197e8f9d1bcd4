// The hub's HTTP API as the page uses it: reads (`get`; `getAll` follows a list's pages)
// and the operator's writes
// (`send`: POST, PUT, DELETE with a JSON body and optional headers). The token goes as
// `Authorization: Bearer`; it is never logged or shown. Refusals become errors that
// carry the HTTP status and the hub's `detail`, so a panel can say what went wrong.

const FETCH_TIMEOUT_MS = 15_000;
/** Entries asked per page of a list (`?limit=`; the hub's `limits.max_page_size` must allow it). */
export const PAGE_SIZE = 1000;
/** Pages followed at most for one list (a million devices): a hub that keeps linking is stopped. */
const MAX_PAGES = 1000;

/** The hub refused the token itself (401), or this token may not do this (403). */
export class AuthError extends Error {
  constructor(status, detail) {
    super(`the hub refused the token (${status}${detail ? `: ${detail}` : ''})`);
    this.status = status;
    this.detail = detail;
  }
}

/** Any other refusal: `status` (400, 404, 409, …) and the hub's `detail`. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}${detail ? `: ${detail}` : ''}`);
    this.status = status;
    this.detail = detail;
  }
}

export class Hub {
  constructor(token) {
    this.token = token;
  }

  /** GET `path` → the parsed JSON body. */
  async get(path) {
    return (await this.request('GET', path)).body;
  }

  /**
   * GET a list endpoint page by page — `?limit=PAGE_SIZE`, then each `Link: <…>;
   * rel="next"` the hub answers (docs/http-api.md "Pages") — → every entry, in order.
   */
  async getAll(path) {
    const all = [];
    let next = `${path}${path.includes('?') ? '&' : '?'}limit=${PAGE_SIZE}`;
    for (let pages = 0; next; pages++) {
      if (pages >= MAX_PAGES) throw new Error(`${path}: more than ${MAX_PAGES} pages`);
      const res = await this.request('GET', next);
      for (const x of res.body) all.push(x);
      next = nextLink(res.link);
    }
    return all;
  }

  /** `method` `path` with `body` (JSON) → `{status, body, etag, link}`; refusals throw. */
  async send(method, path, body, headers = {}) {
    return this.request(method, path, body, headers);
  }

  async request(method, path, body, headers = {}) {
    let res;
    const init = {
      method,
      headers: { Authorization: `Bearer ${this.token}`, ...headers },
      cache: 'no-store',
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new Error(e.name === 'TimeoutError' ? 'the hub did not answer in 15 s' : 'the hub is not reachable');
    }
    if (res.ok) {
      const text = await res.text();
      return {
        status: res.status,
        body: text ? JSON.parse(text) : null,
        etag: res.headers.get('ETag'),
        link: res.headers.get('Link'),
      };
    }
    let detail = '';
    try {
      detail = (await res.json()).detail ?? '';
    } catch {
      // Not JSON: the status says enough.
    }
    if (res.status === 401 || res.status === 403) throw new AuthError(res.status, detail);
    throw new ApiError(res.status, detail);
  }

  liveUrl() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}/v1/live?token=${encodeURIComponent(this.token)}`;
  }
}

/** The `rel="next"` target of a `Link` header (RFC 8288), or null. */
export function nextLink(header) {
  if (!header) return null;
  for (const part of header.split(',')) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /(^|;)\s*rel="?next"?\s*(;|$)/.test(m[2])) return m[1];
  }
  return null;
}
