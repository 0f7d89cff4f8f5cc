// The official Yjs library in Node speaking the docedit protocol over the hub's /ws (raw `ws`; y-protocols
// sync messages, base64 in the JSON envelope), as docs/docedit.md specifies.
//
//   node tests/node/yjs_over_hub.mjs --url ws://127.0.0.1:PORT/ws --token JWT --doc DOC --text TEXT
//        [--after "|"] [--expect OTHER] [--delay 2] [--name Node] [--paste N]
//
// Prints JSON lines: {"ready": true} once synced; at the end {"ok": true, "text": ..., ...}. It waits for the
// text to contain --after before typing, types --text one character per update at the end of the text,
// then waits until the text contains --expect and every update of its own was acknowledged. --paste N
// then appends N characters in one update: its base64 exceeds 32768 characters, so it goes in parts.
import * as Y from "yjs";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { HubSocket, args, b64, emit, run, sleep, unb64, until } from "./hubws.mjs";

const opts = args();
const channel = `docedit:${opts.doc}`;

function syncMessage(type, payload) {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, type);
  encoding.writeVarUint8Array(encoder, payload);
  return encoding.toUint8Array(encoder);
}

function applySync(doc, message, origin) {
  const encoder = encoding.createEncoder();
  const type = syncProtocol.readSyncMessage(decoding.createDecoder(message), encoder, doc, origin);
  return type;
}

run(async () => {
  const doc = new Y.Doc();
  const text = doc.getText("content");
  const awareness = new awarenessProtocol.Awareness(doc);
  const hub = await HubSocket.connect(opts.url, opts.token);
  const remote = { updates: 0, awareness: [] };

  hub.on("docedit.update", (data) => {
    if (data.client === hub.hello.client) return;
    remote.updates++;
    applySync(doc, unb64(data.m), "hub");
  });
  hub.on("docedit.awareness", (data) => {
    if (data.client === hub.hello.client) return;
    awarenessProtocol.applyAwarenessUpdate(awareness, unb64(data.m), "hub");
    remote.awareness.push(data.client);
  });

  const { snapshot } = await hub.sub(channel);
  // the snapshot's step1 is a bare sync sub-message: 0, then the hub's state vector
  const step1 = decoding.createDecoder(unb64(snapshot.step1));
  if (decoding.readVarUint(step1) !== 0) throw new Error(`snapshot.step1 is not a step 1: ${snapshot.step1}`);
  const serverVector = decoding.readVarUint8Array(step1);
  if (snapshot.awareness) awarenessProtocol.applyAwarenessUpdate(awareness, unb64(snapshot.awareness), "hub");

  const reply = await hub.pub(channel, "docedit.sync", {
    m: b64(syncMessage(syncProtocol.messageYjsSyncStep1, Y.encodeStateVector(doc))),
  });
  if (applySync(doc, unb64(reply.m), "hub") !== syncProtocol.messageYjsSyncStep2) {
    throw new Error("the reply to step 1 is not a step 2");
  }
  const missing = Y.encodeStateAsUpdate(doc, serverVector);
  if (missing.length > 2) {
    await hub.pub(channel, "docedit.sync", { m: b64(syncMessage(syncProtocol.messageYjsSyncStep2, missing)) });
  }

  // local updates go out in order, one per transaction; a big one in parts of at most 32768 characters
  let sent = Promise.resolve();
  let acked = 0;
  let parts = 0;
  const sendSync = async (m) => {
    if (m.length <= 32768) return hub.pub(channel, "docedit.sync", { m });
    const count = Math.ceil(m.length / 32768);
    const id = `p${Date.now().toString(36)}`;
    let reply;
    for (let index = 0; index < count; index++) {
      reply = await hub.pub(channel, "docedit.sync", { m: m.slice(index * 32768, (index + 1) * 32768), part: { id, index, count } });
      if (index < count - 1 && reply?.partial !== true) throw new Error(`part ${index}: ${JSON.stringify(reply)}`);
      parts++;
    }
    return reply;
  };
  doc.on("update", (update, origin) => {
    if (origin === "hub") return;
    const m = b64(syncMessage(syncProtocol.messageYjsUpdate, update));
    sent = sent.then(() => sendSync(m)).then((data) => {
      if (data?.applied !== true) throw new Error(`update not applied: ${JSON.stringify(data)}`);
      acked++;
    });
  });
  awareness.setLocalStateField("user", { name: opts.name ?? "Node", color: "#2b8a3e" });
  await hub.pub(channel, "docedit.awareness", { m: b64(awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID])) });
  emit({ ready: true, initial: text.toString() });

  if (opts.after) await until(() => text.toString().includes(opts.after), 10000, `"${opts.after}"`);
  const delay = Number(opts.delay ?? 2);
  for (const char of opts.text ?? "") {
    text.insert(text.length, char);
    if (delay) await sleep(delay);
  }
  if (opts.paste) {
    // varied text, so the update does not compress into a few bytes
    const block = Array.from({ length: Number(opts.paste) }, (_, i) => String.fromCharCode(33 + ((i * 7919) % 90))).join("");
    text.insert(text.length, `[${block}]`);
  }
  await sent;
  if (opts.expect) await until(() => text.toString().includes(opts.expect), 10000, `"${opts.expect}"`);
  await sent;
  hub.close();
  return {
    text: text.toString(),
    acked,
    parts,
    remote_updates: remote.updates,
    remote_awareness: remote.awareness,
    awareness_names: [...awareness.getStates().values()].map((state) => state?.user?.name ?? null),
  };
});
