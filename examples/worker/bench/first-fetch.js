// How long the Worker takes from a request's arrival to its first provider fetch, against a
// passthrough Worker (one fetch, no router) on the same workerd: both timed from the client's
// send to the mock provider's receipt of the request, interleaved, on loopback. The difference is
// the router's cost before the first fetch (config parse, machine, wasm calls, the JS driver).
//
//   node bench/first-fetch.js [requests per side, default 200]
//
// The mock's clock (received_at_ms, since it started) is aligned with this process's by the
// minimum of (receipt - send) over direct requests. Needs runtime-wasm/pkg (scripts/build-wasm.sh).

import { MockServer, request } from "../../../runtime-wasm/tests/mock.js";
import { Workerd } from "../test/workerd.js";

const n = Number(process.argv[2] ?? 200);
const mock = await MockServer.start();
const direct = `${mock.baseUrl("a")}/chat/completions`;
const workerd = await Workerd.start({ providers: [mock.provider("a")] }, direct);
const body = JSON.stringify(request());
const headers = { "content-type": "application/json", authorization: "Bearer sk-bench" };

const sent = []; // [side, performance.now() at send], in the order the mock receives them
async function send(side, url) {
  sent.push([side, performance.now()]);
  const response = await fetch(url, { method: "POST", headers, body });
  if (response.status !== 200) throw new Error(`${side}: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}

try {
  const router = `${workerd.url}/v1/chat/completions`;
  const passthrough = `${workerd.passthroughUrl}/`;
  await send("router-first", router); // the isolate's first request
  await send("passthrough-first", passthrough);
  for (let i = 0; i < 50; i++) await send("direct", direct);
  for (let i = 0; i < n; i++) {
    await send("router", router);
    await send("passthrough", passthrough);
  }
  for (let i = 0; i < 50; i++) await send("direct", direct);
  const received = await mock.received("a");
  if (received.length !== sent.length) throw new Error(`${received.length} received, ${sent.length} sent`);
  const raw = received.map((r, i) => [sent[i][0], r.received_at_ms - sent[i][1]]);
  const offset = Math.min(...raw.filter(([s]) => s === "direct").map(([, d]) => d));
  const median = (side) => {
    const xs = raw.filter(([s]) => s === side).map(([, d]) => d - offset).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)];
  };
  const fmt = (ms) => `${ms.toFixed(3)} ms`;
  const [r, p] = [median("router"), median("passthrough")];
  console.log(`send -> mock receipt, median of ${n} each, interleaved (direct = 0):`);
  console.log(`  through the router Worker      ${fmt(r)}   (isolate's first request: ${fmt(median("router-first"))})`);
  console.log(`  through a passthrough Worker   ${fmt(p)}   (first: ${fmt(median("passthrough-first"))})`);
  console.log(`  router's time to first fetch   ${fmt(r - p)}   (ratio ${(r / p).toFixed(2)})`);
} finally {
  workerd.stop();
  mock.stop();
}
