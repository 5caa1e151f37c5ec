// Runs the example Worker under workerd (the npm package's binary) on an ephemeral loopback
// port: a config generated for the test, the Worker's modules embedded by path, ROUTER_CONFIG
// bound as text. Also serves a `passthrough` Worker (one fetch to a URL, no router), the
// baseline of the first-fetch measurement.

import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const WORKERD = fileURLToPath(new URL("../node_modules/.bin/workerd", import.meta.url));

/** A capnp text literal (JSON's string escapes are capnp's too, for ASCII text). */
const text = (s) => JSON.stringify(s);

const PASSTHROUGH = `export default {
  async fetch(request, env) {
    return fetch(env.TARGET, { method: "POST", headers: request.headers, body: await request.arrayBuffer() });
  },
};`;

function capnp(routerConfig, passthroughTarget, dir) {
  writeFileSync(join(dir, "passthrough.js"), PASSTHROUGH);
  // capnp embeds paths relative to the config file.
  const embed = (file) => `embed ${text(relative(dir, file))}`;
  const module = (name, kind) => `(name = ${text(name)}, ${kind} = ${embed(join(REPO, name))})`;
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "router", worker = (
      modules = [
        ${module("examples/worker/src/worker.js", "esModule")},
        ${module("runtime-wasm/js/router.js", "esModule")},
        ${module("runtime-wasm/pkg/f3dx_router_wasm.js", "esModule")},
        ${module("runtime-wasm/pkg/f3dx_router_wasm_bg.wasm", "wasm")},
      ],
      compatibilityDate = "2025-09-01",
      bindings = [ (name = "ROUTER_CONFIG", text = ${text(JSON.stringify(routerConfig))}) ],
      globalOutbound = "loopback",
    )),
    (name = "passthrough", worker = (
      modules = [ (name = "passthrough.js", esModule = ${embed(join(dir, "passthrough.js"))}) ],
      compatibilityDate = "2025-09-01",
      bindings = [ (name = "TARGET", text = ${text(passthroughTarget)}) ],
      globalOutbound = "loopback",
    )),
    (name = "loopback", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [
    (name = "router", address = "127.0.0.1:0", http = (), service = "router"),
    (name = "passthrough", address = "127.0.0.1:0", http = (), service = "passthrough"),
  ],
);
`;
}

export class Workerd {
  /** Starts workerd; resolves once both sockets listen. */
  static async start(routerConfig, passthroughTarget) {
    const dir = mkdtempSync(join(tmpdir(), "f3dx-workerd-"));
    const path = join(dir, "config.capnp");
    writeFileSync(path, capnp(routerConfig, passthroughTarget, dir));
    // fd 3: workerd's control channel, one JSON line per socket it listens on.
    const child = spawn(WORKERD, ["serve", path, "--control-fd=3"], {
      stdio: ["ignore", "inherit", "inherit", "pipe"],
    });
    const ports = await new Promise((resolve, reject) => {
      const found = {};
      createInterface({ input: child.stdio[3] }).on("line", (line) => {
        const event = JSON.parse(line);
        if (event.event === "listen") found[event.socket] = event.port;
        if (found.router && found.passthrough) resolve(found);
      });
      child.once("exit", (code) => reject(new Error(`workerd exited with ${code}`)));
      // No binary (npm ci not run: scripts/install-wasm-tools.sh does it) fails, never hangs.
      child.once("error", (e) => reject(new Error(`workerd did not start (${e.code}): run scripts/install-wasm-tools.sh`)));
    });
    return new Workerd(child, dir, ports);
  }

  constructor(child, dir, ports) {
    this.child = child;
    this.dir = dir;
    this.url = `http://127.0.0.1:${ports.router}`;
    this.passthroughUrl = `http://127.0.0.1:${ports.passthrough}`;
  }

  stop() {
    this.child.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
