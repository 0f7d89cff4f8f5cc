// The mistakes the channel types catch: tsc must refuse this file with exactly the error each line names
// (tests/test_sdk_package.py compares them). typed.ts beside it is an app written right.
import { connect } from "@hub-realtime/client";
import type { HubChannels } from "./hub-channels.js";

const hub = connect<HubChannels>();

// a field the message does not have (TypeScript suggests the right one when the name is close)
void hub.publish("chat:lobby", "chat.send", { txt: "hi" }); // expect TS2561
void hub.publish("chat:lobby", "chat.send", { body: "hi" }); // expect TS2353
// a required field missing; a field of the wrong type
void hub.publish("chat:lobby", "chat.send", {}); // expect TS2345
void hub.publish("chat:lobby", "chat.send", { text: 42 }); // expect TS2322
// a message type the channel does not take; a namespace no plugin has
void hub.publish("chat:lobby", "chat.post", { text: "hi" }); // expect TS2345
void hub.publish("caht:lobby", "chat.send", { text: "hi" }); // expect TS2345
// an event the channel does not send; a field its data does not have
hub.subscribe("chat:lobby", { events: { "chat.message": () => {} } }); // expect TS2353
hub.subscribe("chat:lobby", { events: { "chat.posted": (message) => message.body } }); // expect TS2339
