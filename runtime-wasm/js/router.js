// f3dx-router's JavaScript driver: the wasm module's host, driven by `fetch`, `AbortController`
// and `setTimeout`, for Node 20+ and Cloudflare Workers.
//
// The driver decides nothing. Every call into the module passes the time in
// (`performance.now()`); after every call the driver takes the commands the module queued and
// executes them in order: `send` (a `fetch` with its own `AbortController`), `abort` (that
// controller's `abort()`, which closes the attempt's connection), `wake` (a `setTimeout` that
// fires the module's timers), `ready` (poll that call for its chunks or its outcome). What a
// fetch observes is fed back as it arrives: head, body pieces, end, or a transport failure.

import { initSync, WasmRouter } from "../pkg/f3dx_router_wasm.js";

let initialized = false;

/** Instantiates the module once: `module` is a `WebAssembly.Module` (a Worker's `.wasm` import)
 * or its bytes. */
export function init(module) {
  if (!initialized) {
    initSync({ module });
    initialized = true;
  }
}

/** Every error the router throws. `name` says which (the Python package's exception names:
 * `HardFailureError`, `AllProvidersFailedError`, `DeadlineExceededError`, `RateLimitedError`,
 * `StreamInterruptedError`, `UnsupportedError`, `CancelledError`, `ConfigError`,
 * `InvalidRequestError`, `InternalError`); `attempts` lists every attempt made, and `provider`,
 * `status`, `body`, `field`, `deadlineMs`, `retryAfterMs` are set where they apply. No message or
 * field ever holds an API key. */
export class RouterError extends Error {
  constructor(fields) {
    super(fields.message);
    this.name = fields.name;
    this.attempts = fields.attempts ?? [];
    for (const [key, value] of Object.entries(fields)) {
      if (!["ok", "name", "message", "attempts"].includes(key) && value !== null) this[key] = value;
    }
  }
}

const encoder = new TextEncoder();
const now = () => performance.now();

/** Runs `f`, turning what the module throws (the JSON text of an error) into a RouterError. */
function guard(f) {
  try {
    return f();
  } catch (e) {
    if (typeof e === "string") throw new RouterError(JSON.parse(e));
    throw e;
  }
}

function randomSeed() {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi & 0x1fffff) * 2 ** 32 + lo; // 53 bits: exact in a JS number
}

function cancelled(reason) {
  const message = reason instanceof Error ? reason.message : "request cancelled by the caller";
  return new RouterError({ name: "CancelledError", message, attempts: [] });
}

/** What the module calls a transport failure, from what `fetch` threw (Node's undici puts a
 * code in `cause`; workerd says it in the message). */
export function transportKind(error) {
  const code = String(error?.cause?.code ?? error?.code ?? "");
  const text = `${code} ${error?.message ?? ""} ${error?.cause?.message ?? ""}`;
  if (/ECONNREFUSED|refused/i.test(text)) return "refused";
  if (/ENOTFOUND|EAI_AGAIN|DNS/i.test(text)) return "dns";
  if (/TIMEOUT|ETIMEDOUT|timed out/i.test(text)) return "timeout";
  if (/CERT|TLS|SSL|SELF_SIGNED/i.test(text)) return "tls";
  if (/ECONNRESET|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED|terminated|connection lost|reset|closed/i.test(text)) {
    return "reset";
  }
  return "other";
}

/** A request body as bytes; `stream`, when given, sets the request's `stream` field. */
function bodyOf(request, stream) {
  if (stream === undefined && typeof request === "string") return encoder.encode(request);
  const object = typeof request === "string" ? JSON.parse(request) : request;
  return encoder.encode(JSON.stringify(stream === undefined ? object : { ...object, stream }));
}

/** One router over the module: the same config JSON as every other driver. */
export class Router {
  #wasm;
  #fetch;
  /** attempt -> its AbortController, while its fetch runs */
  #fetches = new Map();
  /** call -> { onChunk, resolve, reject, signal, onAbort } */
  #calls = new Map();
  #timer = null;
  #timerAt = Infinity;
  #closed = false;

  /**
   * @param config the router config: an object or its JSON text.
   * @param options.env variables for `api_key_env` (a Worker's `env`; only string values are read).
   * @param options.seed the seed of the machine's random choices (default: random).
   * @param options.fetch the fetch to use (default: the global one).
   */
  constructor(config, { env, seed, fetch } = {}) {
    const text = typeof config === "string" ? config : JSON.stringify(config);
    const vars = env
      ? JSON.stringify(Object.fromEntries(Object.entries(env).filter(([, v]) => typeof v === "string")))
      : undefined;
    const t = now();
    const unix = Date.now();
    this.#wasm = guard(() => new WasmRouter(encoder.encode(text), vars, seed ?? randomSeed(), t, unix));
    this.#fetch = fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Resolves with the OpenAI `chat.completion` object. `options.signal` cancels it. */
  async chatCompletions(request, options = {}) {
    return (await this.route(request, options)).response;
  }

  /** Resolves with `{ response, provider, attempts }`: the `chat.completion` object, who served
   * it, and every attempt made. */
  async route(request, { signal } = {}) {
    const outcome = await this.#start(bodyOf(request), false, signal, null);
    return { response: outcome.body, provider: outcome.provider, attempts: outcome.attempts };
  }

  /** A `ReadableStream` of OpenAI `chat.completion.chunk` objects (the request is sent with
   * `stream: true`); it errors with the RouterError if routing fails. Its `routed` promise
   * resolves with `{ provider, attempts }` at its end. Cancelling the stream (or
   * `options.signal`) cancels the request. */
  chatCompletionsStream(request, { signal } = {}) {
    const body = bodyOf(request, true);
    let call;
    let settle;
    const routed = new Promise((resolve, reject) => (settle = { resolve, reject }));
    routed.catch(() => {}); // the stream carries the error too; an unread promise is not unhandled
    const stream = new ReadableStream({
      start: (controller) => {
        const done = this.#start(body, true, signal, (chunk) => controller.enqueue(JSON.parse(chunk)), (id) => {
          call = id;
        });
        done.then(
          (outcome) => {
            controller.close();
            settle.resolve({ provider: outcome.provider, attempts: outcome.attempts });
          },
          (error) => {
            controller.error(error);
            settle.reject(error);
          },
        );
      },
      cancel: (reason) => {
        if (call !== undefined) this.#cancel(call, reason);
      },
    });
    stream.routed = routed;
    return stream;
  }

  /** `{requests, attempts, tasks, fetches, calls}` in flight: all zero when idle. */
  inFlight() {
    const [requests, attempts, tasks, fetches, calls] = this.#wasm.inFlight();
    return { requests, attempts, tasks, fetches, calls, jsFetches: this.#fetches.size, jsCalls: this.#calls.size };
  }

  /** Cancels everything in flight and frees the module's router (once; later calls do nothing). */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const id of [...this.#calls.keys()]) this.#cancel(id, undefined);
    for (const controller of this.#fetches.values()) controller.abort();
    this.#fetches.clear();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#wasm.free();
  }

  #start(body, stream, signal, onChunk, onId) {
    return new Promise((resolve, reject) => {
      if (this.#closed) throw new RouterError({ name: "RouterError", message: "the router is closed" });
      if (signal?.aborted) throw cancelled(signal.reason);
      const id = guard(() => this.#wasm.submit(body, stream, now()));
      onId?.(id);
      const entry = { onChunk, resolve, reject, signal, onAbort: null };
      this.#calls.set(id, entry);
      this.#holdProcess();
      if (signal) {
        entry.onAbort = () => this.#cancel(id, signal.reason);
        signal.addEventListener("abort", entry.onAbort, { once: true });
      }
      this.#drain();
      this.#poll(id);
    });
  }

  /** The caller gave up: the module aborts every attempt of the call. */
  #cancel(id, reason) {
    const entry = this.#calls.get(id);
    if (!entry) return;
    this.#forget(id, entry);
    this.#wasm.cancel(id, now());
    this.#drain();
    entry.reject(cancelled(reason));
  }

  #forget(id, entry) {
    this.#calls.delete(id);
    if (entry.onAbort) entry.signal.removeEventListener("abort", entry.onAbort);
    this.#holdProcess();
  }

  /** Executes every command queued, until none is left. */
  #drain() {
    for (;;) {
      const commands = this.#wasm.takeCommands();
      if (commands.length === 0) return;
      for (const c of commands) {
        switch (c.kind) {
          case "send":
            this.#send(c.id, c.method, c.url, c.headers, c.body);
            break;
          case "abort": {
            const controller = this.#fetches.get(c.id);
            this.#fetches.delete(c.id);
            controller?.abort();
            break;
          }
          case "wake":
            this.#wake(c.at);
            break;
          case "ready":
            this.#poll(c.id);
            break;
        }
        c.free();
      }
    }
  }

  /** Hands call `id`'s chunks and outcome to its caller. */
  #poll(id) {
    for (;;) {
      const entry = this.#calls.get(id);
      if (!entry) return;
      const polled = this.#wasm.poll(id);
      if (!polled) return;
      const { chunk, outcome } = polled;
      polled.free();
      if (chunk !== undefined) {
        entry.onChunk?.(chunk);
        continue;
      }
      this.#forget(id, entry);
      const result = JSON.parse(outcome);
      if (result.ok) entry.resolve(result);
      else entry.reject(new RouterError(result));
      return;
    }
  }

  #wake(at) {
    if (this.#timer !== null && this.#timerAt <= at) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, Math.ceil(at - now())));
    this.#holdProcess();
  }

  /** Node: a timer keeps the process alive only while a call is in flight (a deadline due in a
   * minute must not hold up a script's exit once its calls are done). The timer stays armed:
   * the host asks for an alarm only when its earliest due time moves earlier. */
  #holdProcess() {
    if (this.#calls.size > 0) this.#timer?.ref?.();
    else this.#timer?.unref?.();
  }

  #fire() {
    if (this.#closed) return;
    this.#timer = null;
    this.#timerAt = Infinity;
    const next = this.#wasm.fireTimers(now());
    this.#drain();
    if (next !== undefined) this.#wake(next);
  }

  /** Feeds one observation of an attempt, then executes what it caused. */
  #feed(f) {
    const result = f();
    this.#drain();
    return result;
  }

  /** One attempt: a fetch, its head and body fed as they arrive. */
  async #send(id, method, url, names, body) {
    const controller = new AbortController();
    this.#fetches.set(id, controller);
    const ours = () => this.#fetches.get(id) === controller;
    const headers = new Headers();
    for (let i = 0; i + 1 < names.length; i += 2) headers.append(names[i], names[i + 1]);
    let response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body: method === "GET" || method === "HEAD" ? undefined : body,
        signal: controller.signal,
      });
    } catch (error) {
      if (ours()) {
        this.#fetches.delete(id);
        this.#feed(() => this.#wasm.fail(id, transportKind(error), now()));
      }
      return;
    }
    if (!ours()) return;
    const pairs = [];
    response.headers.forEach((value, name) => pairs.push(name, value));
    if (!this.#feed(() => this.#wasm.head(id, response.status, pairs, now()))) {
      this.#stop(id, controller);
      return;
    }
    const reader = response.body?.getReader();
    try {
      for (;;) {
        const { done, value } = reader ? await reader.read() : { done: true };
        if (!ours()) return;
        if (done) break;
        if (!this.#feed(() => this.#wasm.body(id, value, now()))) {
          this.#stop(id, controller);
          return;
        }
      }
    } catch (error) {
      if (ours()) {
        this.#fetches.delete(id);
        this.#feed(() => this.#wasm.fail(id, transportKind(error), now()));
      }
      return;
    }
    this.#fetches.delete(id);
    this.#feed(() => this.#wasm.end(id, now()));
  }

  /** The machine wants no more of this attempt: close its connection. */
  #stop(id, controller) {
    if (this.#fetches.get(id) === controller) this.#fetches.delete(id);
    controller.abort();
  }
}
