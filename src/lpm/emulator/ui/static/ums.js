// A small UMS client for the browser, speaking the messaging WebSocket APIs the way LivePerson's
// web clients do: discover the hosts with CSDS, get an identity from the IdP (consumers) or
// agentVep (agents), open the socket, send request frames {kind:"req", id, type, body} and match
// the responses by id, route notifications, keep the socket alive with GetClock.

import { say } from "./dom.js";

const REQUEST_TIMEOUT = 10000;
const KEEP_ALIVE = 30000;

export class RequestError extends Error {
  constructor(type, frame) {
    const body = frame && frame.body;
    const text = typeof body === "string" ? body : JSON.stringify(body);
    super(`${type} failed: ${frame ? frame.code : "?"} ${text || ""}`.trim());
    this.frame = frame;
    this.code = frame ? frame.code : undefined;
  }
}

export class UmsSocket {
  // url: the WebSocket URL; keepAlive: the request type of the keep-alive ("GetClock" or ".GetClock").
  constructor(url, { keepAlive = "GetClock", onNotification, onClose } = {}) {
    this.url = url;
    this.keepAliveType = keepAlive;
    this.onNotification = onNotification || (() => {});
    this.onClose = onClose || (() => {});
    this.pending = new Map();
    this.nextId = 1;
    this.ws = null;
    this.closedByUs = false;
    this.timer = null;
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.timer = setInterval(() => {
          this.request(this.keepAliveType).catch(() => {});
        }, KEEP_ALIVE);
        resolve(this);
      };
      ws.onmessage = (event) => this._frame(event.data);
      ws.onclose = (event) => {
        clearInterval(this.timer);
        for (const { reject: fail, timer, type } of this.pending.values()) {
          clearTimeout(timer);
          fail(new Error(`${type}: the socket closed (code ${event.code})`));
        }
        this.pending.clear();
        if (!opened) reject(new Error(`could not connect (code ${event.code})`));
        else this.onClose({ code: event.code, reason: event.reason, byUs: this.closedByUs });
      };
    });
  }

  _frame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (_) {
      return;
    }
    if (frame.kind === "resp") {
      const waiting = this.pending.get(String(frame.reqId));
      if (!waiting) return;
      this.pending.delete(String(frame.reqId));
      clearTimeout(waiting.timer);
      if (typeof frame.code === "number" && frame.code >= 400) waiting.reject(new RequestError(waiting.type, frame));
      else waiting.resolve(frame);
    } else if (frame.kind === "notification") {
      try {
        this.onNotification(frame);
      } catch (error) {
        console.error(error);
      }
    }
  }

  // Send a request; resolves with the response frame, rejects on a code >= 400 or a timeout.
  request(type, body, { headers, metadata, timeout = REQUEST_TIMEOUT } = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(`${type}: not connected`));
    }
    const id = String(this.nextId++);
    const frame = { kind: "req", id, type };
    if (body !== undefined) frame.body = body;
    if (headers) frame.headers = headers;
    if (metadata) frame.metadata = metadata;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${type}: no response within ${timeout / 1000} s`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer, type });
      this.ws.send(JSON.stringify(frame));
    });
  }

  close() {
    this.closedByUs = true;
    clearInterval(this.timer);
    if (this.ws) this.ws.close(1000, "bye");
  }
}

export function httpScheme() {
  return location.protocol === "https:" ? "https:" : "http:";
}

export function wsScheme() {
  return location.protocol === "https:" ? "wss:" : "ws:";
}

export async function fetchJson(url, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = text;
  }
  if (!response.ok) {
    const message =
      (data && data.error && (data.error.message || data.error)) || (typeof data === "string" ? data : "");
    const error = new Error(`${method} ${new URL(url, location.href).pathname}: ${response.status} ${message}`);
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

// CSDS: service name -> host[:port], for one account (the Domain API, as every client starts).
export async function discover(accountId) {
  const url = `${httpScheme()}//${location.host}/api/account/${encodeURIComponent(accountId)}/service/baseURI.json?version=1.0`;
  const data = await fetchJson(url);
  const out = {};
  for (const entry of data.baseURIs || []) out[entry.service] = entry.baseURI;
  return out;
}

// The claims of a JWT (not verified: the client only reads its own identity).
export function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch (_) {
    return {};
  }
}

// Reconnection delays (seconds), then the last one again.
export const BACKOFF = [0.5, 1, 2, 4, 8];

/**
 * Reconnect on the BACKOFF schedule until `attempt(code)` succeeds or `gaveUp()` says the page
 * left.  `attempt` gets the last close code (it renews its token after an auth close) and may
 * return a new code to remember for the next try; `onRetry(error)` reports each failure.
 */
export async function reconnectWithBackoff({ code, gaveUp, attempt, onRetry }) {
  for (let n = 0; ; n += 1) {
    const delay = BACKOFF[Math.min(n, BACKOFF.length - 1)];
    await new Promise((resolve) => setTimeout(resolve, delay * 1000));
    if (gaveUp()) return false;
    try {
      await attempt(code);
      return true;
    } catch (error) {
      if (String(error.message).includes("401")) code = 4401;
      onRetry(error);
    }
  }
}

/**
 * The socket side of a page's client (the agent seat, the consumer chat).  A subclass has
 * `connect()` (which opens its socket with `openSocket`), `notification(frame)`
 * and `lost(info)`; after a lost socket, `reconnect(code)` retries on the BACKOFF schedule until
 * it is back (then `reconnected()`) or the page left (`left`), renewing its identity in
 * `renew(lastCode)` before each attempt when the close code asks for it.
 */
export class SocketClient {
  // `app`: the page; `status`: the element that shows the connection's state.
  constructor(app, status) {
    this.app = app;
    this.status = status;
    this.socket = null;
  }

  // A new socket at `url` (`keepAlive`: the keep-alive request type), open and current.
  async openSocket(url, keepAlive) {
    const socket = new UmsSocket(url, {
      keepAlive,
      onNotification: (frame) => this.notification(frame),
      onClose: (info) => this.lost(info),
    });
    say(this.status, "Connecting…");
    await socket.open();
    this.socket = socket;
    return socket;
  }

  async renew(_lastCode) {}

  reconnected() {}

  async reconnect(code) {
    const back = await reconnectWithBackoff({
      code,
      gaveUp: () => this.left,
      attempt: async (lastCode) => {
        await this.renew(lastCode);
        await this.connect();
      },
      onRetry: (error) => say(this.status, `Still disconnected (${error.message}); trying again…`),
    });
    if (back) this.reconnected();
  }
}
