// An OpenAI-compatible endpoint as a Cloudflare Worker: `POST /v1/chat/completions` routed by
// f3dx-router's wasm machine to the providers of `env.ROUTER_CONFIG` (the config JSON every
// driver takes; keys by `api_key_env` from the Worker's secrets). Any OpenAI client can point
// its base URL at `https://<worker>/v1`.
//
// One router per request: a Worker may not carry one request's fetches, streams or timers into
// another's, so the machine's state (cooldowns, health, budgets) lasts one request here. The
// module is compiled and instantiated once per isolate.

import wasm from "../../../runtime-wasm/pkg/f3dx_router_wasm_bg.wasm";
import { init, Router } from "../../../runtime-wasm/js/router.js";

init(wasm);

const encoder = new TextEncoder();

function json(status, value, headers = {}) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The OpenAI error shape, with the status a gateway gives each routing failure. */
function failure(error) {
  const status =
    {
      HardFailureError: error.status,
      RateLimitedError: 429,
      DeadlineExceededError: 504,
      InvalidRequestError: 400,
      ConfigError: 500,
      CancelledError: 499,
    }[error.name] ?? 502;
  const headers =
    error.name === "RateLimitedError" ? { "retry-after": String(Math.ceil(error.retryAfterMs / 1000)) } : {};
  const attempts = (error.attempts ?? []).map((a) => ({ provider: a.provider, outcome: a.outcome, status: a.status }));
  return json(
    status ?? 502,
    { error: { message: error.message, type: error.name, param: error.field ?? null, code: null, attempts } },
    headers,
  );
}

/** `first` then the rest of `reader`'s chunks as OpenAI's server-sent events, ending with
 * `[DONE]`; an error after the stream began is sent as an error event, as OpenAI does. */
function sse(first, reader, close) {
  const event = (value) => encoder.encode(`data: ${JSON.stringify(value)}\n\n`);
  return new ReadableStream({
    start(controller) {
      if (first.done) {
        controller.enqueue(encoder.encode("data: [DONE]\n\n"));
        controller.close();
        close();
      } else {
        controller.enqueue(event(first.value));
      }
    },
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.enqueue(encoder.encode("data: [DONE]\n\n"));
          controller.close();
          close();
          return;
        }
        controller.enqueue(event(value));
      } catch (error) {
        controller.enqueue(event({ error: { message: error.message, type: error.name } }));
        controller.close();
        close();
      }
    },
    async cancel(reason) {
      await reader.cancel(reason);
      close();
    },
  });
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname !== "/v1/chat/completions") {
      return json(404, { error: { message: `no route ${pathname}`, type: "invalid_request_error" } });
    }
    if (request.method !== "POST") {
      return json(405, { error: { message: "use POST", type: "invalid_request_error" } }, { allow: "POST" });
    }
    let body;
    try {
      body = await request.json();
    } catch {
      return json(400, { error: { message: "the body is not JSON", type: "invalid_request_error" } });
    }
    let router;
    try {
      router = new Router(env.ROUTER_CONFIG, { env });
    } catch (error) {
      return failure(error);
    }
    if (body?.stream === true) {
      const stream = router.chatCompletionsStream(body, { signal: request.signal });
      // The first chunk (or the failure) decides the status: an error before any chunk is an
      // HTTP error, not a stream that says so.
      const reader = stream.getReader();
      let first;
      try {
        first = await reader.read();
      } catch (error) {
        router.close();
        return failure(error);
      }
      return new Response(sse(first, reader, () => router.close()), {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
      });
    }
    try {
      return json(200, await router.chatCompletions(body, { signal: request.signal }));
    } catch (error) {
      return failure(error);
    } finally {
      router.close();
    }
  },
};
