// A typed app of the hub's chat, written as a browser app (or one on Node 22+, whose WebSocket is global) would
// write it with @hub-realtime/client and the channel types that `hub schema --format typescript` writes
// (./hub-channels.d.ts). It compiles under tsc --strict; wrong-field.ts beside it holds the mistakes the types
// catch. tests/test_sdk_package.py compiles both and runs this one against a real hub.
import { connect, HubError, type Hub } from "@hub-realtime/client";
import type { Chat, HubChannels } from "./hub-channels.js";

/** What the app saw: its own message as the room's subscribers get it, and what came before it. */
export interface Echo {
  posted: Chat.MessagePosted;
  /** Messages in the room's snapshot when the app joined. */
  earlier: number;
  /** The code of the hub's refusal of an edit of a message that does not exist. */
  refused: string;
}

/** Post `text` in chat room `room` and resolve with the `chat.posted` event it makes. */
export async function postAndEcho(url: string, token: string, room: string, text: string): Promise<Echo> {
  const hub: Hub<HubChannels> = connect<HubChannels>({ url, token });
  try {
    let earlier = -1;
    const posted = new Promise<Chat.MessagePosted>((resolve) => {
      hub.subscribe(`chat:${room}`, {
        onSnapshot: (snapshot) => {
          earlier = snapshot.messages.length; // typed: Chat.ChatSnapshot
        },
        events: {
          "chat.posted": (message) => {
            if (message.text === text) resolve(message); // typed: Chat.MessagePosted
          },
        },
      });
    });
    await hub.whenOpen();
    await hub.publish(`chat:${room}`, "chat.send", { text });
    let refused = "";
    try {
      await hub.publish(`chat:${room}`, "chat.edit", { id: "000000000000-00000000", text: "no such message" });
    } catch (error) {
      if (error instanceof HubError) refused = error.code;
    }
    return { posted: await posted, earlier, refused };
  } finally {
    hub.close();
  }
}
