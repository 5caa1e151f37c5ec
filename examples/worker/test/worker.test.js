// End to end: workerd runs the example Worker, which routes through the wasm router to the
// project's mock provider server on loopback; an OpenAI-shape client (plain fetch) talks to it.

import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { MockServer, KEY, request } from "../../../runtime-wasm/tests/mock.js";
import { Workerd } from "./workerd.js";

let mock;
let workerd;

before(async () => {
  mock = await MockServer.start();
  const config = { providers: [mock.provider("a"), mock.provider("b")] };
  workerd = await Workerd.start(config, `${mock.baseUrl("a")}/chat/completions`);
});
after(() => {
  workerd?.stop();
  mock?.stop();
});
beforeEach(() => mock.reset());

const post = (body) =>
  fetch(`${workerd.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

test("a 503 from the first provider falls through to the second, inside the Worker", async () => {
  await mock.script("a", { status: 503 });
  const response = await post(request());
  assert.equal(response.status, 200);
  const completion = await response.json();
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.choices[0].message.content, "Hello from b.");
  assert.equal((await mock.received("a")).length, 1);
  assert.equal((await mock.received("b"))[0].headers.authorization, `Bearer ${KEY}`);
});

test("a stream through the Worker is OpenAI server-sent events ending with [DONE]", async () => {
  await mock.script("a", { status: 500 });
  const response = await post(request({ stream: true }));
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /text\/event-stream/);
  const events = (await response.text()).split("\n\n").filter(Boolean);
  assert.equal(events.at(-1), "data: [DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, "")));
  assert.ok(chunks.length > 1 && chunks.every((c) => c.object === "chat.completion.chunk"));
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.equal(text, "Hello from b.");
});

test("a hard 401 is the provider's status, with the OpenAI error shape, and goes nowhere else", async () => {
  await mock.script("a", { status: 401 });
  const response = await post(request());
  assert.equal(response.status, 401);
  const { error } = await response.json();
  assert.equal(error.type, "HardFailureError");
  assert.equal((await mock.received("b")).length, 0);
});

test("every provider failing is a 502 listing the attempts", async () => {
  await mock.script("a", { status: 503 });
  await mock.script("b", { reset: true });
  const response = await post(request());
  assert.equal(response.status, 502);
  const { error } = await response.json();
  assert.equal(error.type, "AllProvidersFailedError");
  assert.deepEqual(
    error.attempts.map((a) => [a.provider, a.outcome]),
    [
      ["a", "soft_status"],
      ["b", "transport_error"],
    ],
  );
});

test("a bad request is a 400 naming the field", async () => {
  const response = await post({ model: "gpt-4o" });
  assert.equal(response.status, 400);
  const { error } = await response.json();
  assert.equal(error.param, "messages");
});
