// The wasm router's routing under Node, over real HTTP on loopback against the project's mock
// provider server: the rows of the failure model a JS driver can get wrong (cancel = abort,
// timers, streams), each checked on the wire as well as in the result.

import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { KEY, MockServer, request } from "./mock.js";
import { init, Router, RouterError } from "../js/router.js";

init(readFileSync(new URL("../pkg/f3dx_router_wasm_bg.wasm", import.meta.url)));

let mock;
const routers = [];

before(async () => {
  mock = await MockServer.start();
});
after(() => mock.stop());
beforeEach(async () => {
  await mock.reset();
});

/** A router over mock providers `names` (openai unless given as [name, kind]), closed at the end. */
function router(names, config = {}) {
  const providers = names.map((n) => (Array.isArray(n) ? mock.provider(...n) : mock.provider(n)));
  const r = new Router({ providers, ...config }, { seed: 7 });
  routers.push(r);
  return r;
}

/** Nothing is left in flight: no request, attempt, fetch or call, in the module or in JS. */
function assertIdle(r) {
  for (const [what, n] of Object.entries(r.inFlight())) assert.equal(n, 0, `${what} still in flight`);
}

after(() => {
  for (const r of routers) r.close();
});

test("sequential: a 503 falls through to the next provider", async () => {
  await mock.script("a", { status: 503 });
  const r = router(["a", "b"]);
  const routed = await r.route(request());
  assert.equal(routed.response.choices[0].message.content, "Hello from b.");
  assert.equal(routed.provider, "b");
  assert.deepEqual(
    routed.attempts.map((a) => [a.provider, a.outcome, a.status]),
    [
      ["a", "soft_status", 503],
      ["b", "success", 200],
    ],
  );
  assert.equal((await mock.received("a")).length, 1);
  assertIdle(r);
});

test("a hard 401 is not forwarded, and the key it echoes never reaches the error", async () => {
  await mock.script("a", { status: 401, body: { error: { message: `Incorrect API key provided: ${KEY}` } } });
  const r = router(["a", "b"]);
  const error = await r.chatCompletions(request()).then(
    () => assert.fail("a 401 must fail the request"),
    (e) => e,
  );
  assert.ok(error instanceof RouterError && error instanceof Error);
  assert.equal(error.name, "HardFailureError");
  assert.equal(error.provider, "a");
  assert.equal(error.status, 401);
  assert.deepEqual(
    error.attempts.map((a) => [a.provider, a.outcome]),
    [["a", "hard_status"]],
  );
  assert.equal((await mock.received("b")).length, 0, "b must not see the payload");
  assert.match(error.body, /Incorrect API key provided: \*\*\*/);
  const everything = JSON.stringify({ ...error, message: error.message, stack: error.stack });
  assert.ok(!everything.includes(KEY), "the key leaked into the error");
  assertIdle(r);
});

test("hedged: the first answer wins and the loser's fetch is aborted (its connection closed)", async () => {
  await mock.script("a", { delay_ms: 5000 });
  const r = router(["a", "b"], { policy: "hedged", hedge_k: 2, hedge_delay_ms: 0 });
  const routed = await r.route(request());
  assert.equal(routed.provider, "b");
  assert.ok(await mock.disconnected("a"), "the mock never saw the loser disconnect");
  assert.deepEqual(
    routed.attempts.map((a) => [a.provider, a.outcome]).sort(),
    [
      ["a", "cancelled"],
      ["b", "success"],
    ],
  );
  assertIdle(r);
});

test("hedged with a delay: the second leg starts from a setTimeout when the first is slow", async () => {
  await mock.script("a", { delay_ms: 5000 });
  const r = router(["a", "b"], { policy: "hedged", hedge_k: 2, hedge_delay_ms: 50 });
  const routed = await r.route(request());
  assert.equal(routed.provider, "b");
  // Both legs ended together (b's success cancelled a), so the difference of their latencies is
  // how long after a's send b's was, on the machine's clock: never before the hedge delay.
  const [a, b] = routed.attempts;
  assert.deepEqual([a.provider, a.outcome, b.provider], ["a", "cancelled", "b"]);
  assert.ok(a.latencyMs - b.latencyMs >= 49.999, `b was sent ${a.latencyMs - b.latencyMs} ms after a`);
  assert.equal((await mock.received("b")).length, 1);
  assertIdle(r);
});

test("Retry-After: a 429 cools its provider down, so the next request skips it", async () => {
  await mock.script("a", { status: 429, headers: { "retry-after": "30" } });
  const r = router(["a", "b"]);
  assert.equal((await r.route(request())).provider, "b");
  const second = await r.route(request());
  assert.equal(second.provider, "b");
  assert.deepEqual(
    second.attempts.map((a) => a.provider),
    ["b"],
  );
  assert.equal((await mock.received("a")).length, 1, "a was sent to while cooling down");
  assertIdle(r);
});

test("Anthropic: the request is translated to /v1/messages and the answer back to OpenAI", async () => {
  const r = router([["c", "anthropic"]]);
  const routed = await r.route(request({ max_tokens: 64 }));
  assert.equal(routed.response.object, "chat.completion");
  assert.equal(routed.response.choices[0].message.content, "Hello from c.");
  const [sent] = await mock.received("c");
  assert.equal(sent.path, "/c/v1/messages");
  assert.equal(sent.headers["x-api-key"], KEY);
  assert.equal(sent.json.max_tokens, 64);
  assertIdle(r);
});

test("a recorded OpenAI stream is passed through chunk by chunk", async () => {
  const replay = "openai/streams/chat_finish_length_with_usage.sse";
  await mock.script("a", { stream: { replay } });
  const fixture = readFileSync(new URL(`../../tests/fixtures/${replay}`, import.meta.url), "utf8");
  const expected = fixture
    .split("\n")
    .filter((l) => l.startsWith("data: ") && l !== "data: [DONE]")
    .map((l) => JSON.parse(l.slice(6)));
  const r = router(["a"]);
  const stream = r.chatCompletionsStream(request({ stream_options: { include_usage: true } }));
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.deepEqual(chunks, expected);
  const routed = await stream.routed;
  assert.equal(routed.provider, "a");
  assert.equal((await mock.received("a"))[0].json.stream, true);
  assertIdle(r);
});

test("an Anthropic stream arrives as OpenAI chunks", async () => {
  const r = router([["c", "anthropic"]]);
  const chunks = [];
  for await (const chunk of r.chatCompletionsStream(request())) chunks.push(chunk);
  assert.ok(chunks.length > 1);
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.ok(text.length > 0);
  assertIdle(r);
});

test("a stream that fails before its first token falls through, invisibly", async () => {
  await mock.script("a", { stream: { error_after_events: 0 } });
  const r = router(["a", "b"]);
  const stream = r.chatCompletionsStream(request());
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.match(text, /b/);
  assert.equal((await stream.routed).provider, "b");
  assertIdle(r);
});

test("the deadline fails the request and aborts the attempt still running", async () => {
  await mock.script("a", { delay_ms: 5000 });
  const r = router(["a"], { deadline_ms: 100 });
  await assert.rejects(r.chatCompletions(request()), (e) => {
    assert.equal(e.name, "DeadlineExceededError");
    assert.equal(e.deadlineMs, 100);
    return true;
  });
  assert.ok(await mock.disconnected("a"));
  assertIdle(r);
});

test("an AbortSignal cancels the request: its fetch is aborted", async () => {
  await mock.script("a", { delay_ms: 5000 });
  const r = router(["a"]);
  const controller = new AbortController();
  const pending = r.chatCompletions(request(), { signal: controller.signal });
  await mock.waitFor(async () => (await mock.received("a")).length === 1);
  controller.abort();
  await assert.rejects(pending, { name: "CancelledError" });
  assert.ok(await mock.disconnected("a"));
  assertIdle(r);
});

test("cancelling a stream mid-way aborts its fetch", async () => {
  await mock.script("a", { stream: { chunk_gap_ms: 200 } });
  const r = router(["a"]);
  const reader = r.chatCompletionsStream(request()).getReader();
  const first = await reader.read();
  assert.equal(first.done, false);
  await reader.cancel();
  assert.ok(await mock.disconnected("a"));
  assertIdle(r);
});

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("a connection refused is a soft failure", async () => {
  const base_url = `http://127.0.0.1:${await closedPort()}/v1`;
  const r = new Router({
    providers: [{ name: "down", kind: "openai", base_url, api_key: KEY }, mock.provider("b")],
  });
  routers.push(r);
  const routed = await r.route(request());
  assert.equal(routed.provider, "b");
  assert.equal(routed.attempts[0].outcome, "transport_error");
  assert.equal(routed.attempts[0].detail, "connection refused");
  assertIdle(r);
});

test("a bad config is a ConfigError naming the field, never echoing the value", () => {
  assert.throws(
    () => new Router({ providers: [{ name: "a", kind: "openai", base_url: KEY, api_key: KEY }] }),
    (e) => {
      assert.equal(e.name, "ConfigError");
      assert.equal(e.field, "providers[0].base_url");
      assert.ok(!e.message.includes(KEY));
      return true;
    },
  );
});

test("api_key_env is read from the env given (a Worker's secrets)", async () => {
  const provider = { ...mock.provider("a"), api_key: undefined, api_key_env: "A_KEY" };
  assert.throws(() => new Router({ providers: [provider] }, { env: {} }), { name: "ConfigError" });
  const r = new Router({ providers: [provider] }, { env: { A_KEY: "sk-from-env", OTHER: {} } });
  routers.push(r);
  await r.chatCompletions(request());
  assert.equal((await mock.received("a"))[0].headers.authorization, "Bearer sk-from-env");
});

test("a bad request is an InvalidRequestError naming the field; nothing is sent", async () => {
  const r = router(["a"]);
  await assert.rejects(r.chatCompletions({ model: "m" }), (e) => {
    assert.equal(e.name, "InvalidRequestError");
    assert.equal(e.field, "messages");
    return true;
  });
  assert.equal((await mock.received("a")).length, 0);
  assertIdle(r);
});
