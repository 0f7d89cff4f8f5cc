// A minimal hub protocol client for Node (raw `ws`), for the docedit interop tests: hello, ping/pong,
// requests matched by id, events queued per channel. Speaks docs/protocol.md v1 as any third party would.
import WebSocket from "ws";

export class HubSocket {
  /** @param {WebSocket} ws */
  constructor(ws) {
    this.ws = ws;
    this.hello = null;
    this.nextId = 1;
    /** @type {Map<number, {resolve: Function, reject: Function}>} */
    this.pending = new Map();
    /** @type {Map<string, Function>} event type -> handler */
    this.handlers = new Map();
  }

  /** Connect to `url` (ws://…/ws) with an optional JWT; resolves after the hub's `hello`. */
  static connect(url, token) {
    const protocols = ["hub.v1"];
    if (token) protocols.push(`bearer.${token}`);
    const ws = new WebSocket(url, protocols);
    const client = new HubSocket(ws);
    return new Promise((resolve, reject) => {
      ws.once("error", reject);
      ws.once("close", (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
      ws.on("message", (raw) => {
        const frame = JSON.parse(raw.toString());
        if (frame.op === "hello") {
          client.hello = frame.data;
          resolve(client);
        } else if (frame.op === "ping") {
          ws.send(JSON.stringify({ op: "pong" }));
        } else if (frame.op === "ev") {
          client.handlers.get(frame.type)?.(frame.data, frame);
        } else if ((frame.op === "ok" || frame.op === "err") && client.pending.has(frame.id)) {
          const { resolve: ok, reject: fail } = client.pending.get(frame.id);
          client.pending.delete(frame.id);
          if (frame.op === "ok") ok(frame.data);
          else fail(Object.assign(new Error(`${frame.code}: ${frame.msg}`), { code: frame.code }));
        }
      });
    });
  }

  request(frame) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  sub(channel) {
    return this.request({ op: "sub", ch: channel });
  }

  pub(channel, type, data) {
    return this.request({ op: "pub", ch: channel, type, data });
  }

  on(type, fn) {
    this.handlers.set(type, fn);
  }

  close() {
    this.ws.close();
  }
}

export const b64 = (bytes) => Buffer.from(bytes).toString("base64");
export const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64"));

/** `--name value` pairs of argv. */
export function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  return out;
}

/** Resolve when `predicate()` is true (checked every 5 ms); reject after `ms`. */
export function until(predicate, ms, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      if (predicate()) resolve();
      else if (Date.now() - started > ms) reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      else setTimeout(check, 5);
    };
    check();
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Print one JSON line on stdout (the test reads them). */
export const emit = (object) => process.stdout.write(`${JSON.stringify(object)}\n`);

/** Run `main`, print its result as {ok: true, ...} or the failure as {ok: false, error}, exit; bounded. */
export function run(main, limitMs = 20000) {
  const timer = setTimeout(() => {
    emit({ ok: false, error: `the script took longer than ${limitMs} ms` });
    process.exit(2);
  }, limitMs);
  main().then(
    (result) => {
      clearTimeout(timer);
      emit({ ok: true, ...result });
      process.exit(0);
    },
    (error) => {
      clearTimeout(timer);
      emit({ ok: false, error: String(error?.stack ?? error) });
      process.exit(1);
    },
  );
}
