// A stock y-websocket WebsocketProvider (npm y-websocket, `ws` as the WebSocket) on the hub's /yjs/{doc}.
//
//   node tests/node/ywebsocket_client.mjs --url ws://127.0.0.1:PORT/yjs --token JWT --doc DOC --text TEXT
//        [--after "|"] [--expect OTHER] [--delay 2] [--name Yws] [--denied 1]
//
// Prints {"ready": true} once the provider reports synced, then types --text at the end of the text (one
// character per update), waits for --expect (and with --denied, for the hub's permission-denied auth
// message, which y-websocket reports through console.warn), and prints {"ok": true, "text": ...}. A close before the
// sync ends it with {"ok": false, ...}.
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { args, emit, run, sleep, until } from "./hubws.mjs";

const opts = args();
const denials = [];
const warn = console.warn;
console.warn = (...parts) => {
  const text = parts.map(String).join(" ");
  if (text.includes("Permission denied")) denials.push(text);
  else warn(...parts);
};

run(async () => {
  const doc = new Y.Doc();
  const text = doc.getText("content");
  const params = opts.token ? { token: opts.token } : {};
  const provider = new WebsocketProvider(opts.url, opts.doc, doc, {
    WebSocketPolyfill: WebSocket,
    params,
    connect: true,
    disableBc: true,
    maxBackoffTime: 500,
  });
  const closes = [];
  // event null: we closed it ourselves
  provider.on("connection-close", (event) => closes.push(event ? { code: event.code, reason: String(event.reason) } : { local: true }));
  try {
    provider.awareness.setLocalStateField("user", { name: opts.name ?? "Yws", color: "#862e9c" });
    await until(() => provider.synced || closes.length > 0, 10000, "the provider to sync");
    if (!provider.synced) throw new Error(`closed before sync: ${JSON.stringify(closes)}`);
    emit({ ready: true, initial: text.toString() });
    if (opts.after) await until(() => text.toString().includes(opts.after), 10000, `"${opts.after}"`);
    const delay = Number(opts.delay ?? 2);
    for (const char of opts.text ?? "") {
      text.insert(text.length, char);
      if (delay) await sleep(delay);
    }
    if (opts.expect) await until(() => text.toString().includes(opts.expect), 10000, `"${opts.expect}"`);
    if (opts.denied) await until(() => denials.length > 0, 10000, "a permission-denied message");
    // every local update written to the socket before we go
    await until(() => provider.ws === null || provider.ws.bufferedAmount === 0, 5000, "the socket to drain");
    return { text: text.toString(), closes, denials };
  } finally {
    provider.destroy();
  }
});
