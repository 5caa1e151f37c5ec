// The project's mock provider server (tests/src/bin/f3dx-mock-provider.rs) as a child process,
// scripted and inspected through its control API: the same server the conformance suite and the
// Python tests use. The binary is $F3DX_MOCK_PROVIDER, else target/debug/f3dx-mock-provider
// (`cargo build -p f3dx-router-testkit --bin f3dx-mock-provider`).

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** A test API key: it must never appear in an error. */
export const KEY = "sk-wasm-test-key-0123456789";

export class MockServer {
  static async start() {
    const binary = process.env.F3DX_MOCK_PROVIDER ?? `${REPO}target/debug/f3dx-mock-provider`;
    if (!existsSync(binary)) {
      throw new Error(`${binary} not found: cargo build -p f3dx-router-testkit --bin f3dx-mock-provider`);
    }
    // stdin is a pipe: the server exits when this process does.
    const child = spawn(binary, [], { stdio: ["pipe", "pipe", "inherit"] });
    const line = await new Promise((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.once("line", resolve);
      child.once("exit", (code) => reject(new Error(`f3dx-mock-provider exited with ${code}`)));
    });
    return new MockServer(child, JSON.parse(line));
  }

  constructor(child, info) {
    this.child = child;
    this.httpUrl = info.http_url;
  }

  async control(method, path, body) {
    const response = await fetch(`${this.httpUrl}/_control/${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`control ${path}: ${JSON.stringify(json)}`);
    return json;
  }

  baseUrl(provider) {
    return `${this.httpUrl}/${provider}/v1`;
  }

  /** Router config entry for mock provider `name`. */
  provider(name, kind = "openai", extra = {}) {
    return { name, kind, base_url: this.baseUrl(name), api_key: KEY, ...extra };
  }

  script(provider, ...steps) {
    return this.control("POST", `${provider}/script`, steps);
  }

  received(provider) {
    return this.control("GET", `${provider}/received`);
  }

  reset() {
    return this.control("POST", "reset", {});
  }

  /** Waits (bounded) until `check` holds; returns whether it did. */
  async waitFor(check, timeoutMs = 5000) {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return check();
  }

  /** Waits until provider's last request ended with the client going away. */
  disconnected(provider) {
    return this.waitFor(async () => {
      const received = await this.received(provider);
      return received.length > 0 && received.at(-1).outcome === "client_disconnected";
    });
  }

  stop() {
    this.child.stdin.end();
    this.child.kill();
  }
}

/** An OpenAI chat request. */
export function request(extra = {}) {
  return { model: "gpt-4o", messages: [{ role: "user", content: "hi" }], ...extra };
}
