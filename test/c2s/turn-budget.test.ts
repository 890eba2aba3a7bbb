// Under a burst, reads wait for the next turn of the event loop once a turn has
// used its budget (src/core/turn.ts): nothing read may be lost or reordered,
// and a light connection is still answered while busy ones flood the server.
import { describe, expect, it } from "vitest";
import { plainLogin, serverPerTest } from "./raw.js";

const server = serverPerTest();

describe("the turn budget", () => {
  it("a flood from several connections arrives whole and in order, and a ping meanwhile is answered", async () => {
    const port = await server.boot({ modules_enabled: ["saslauth", "roster", "presence", "ping", "mam"] });
    const bob = await plainLogin(port, "bob", "sink");
    bob.send("<presence/>");
    const senders = await Promise.all([0, 1, 2].map((i) => plainLogin(port, "alice", `s${i}`)));
    const N = 1500;
    for (const [i, s] of senders.entries()) {
      let chunk = "";
      for (let k = 1; k <= N; k++) {
        chunk += `<message to='bob@localhost' type='chat' id='s${i}-${k}'><body>${i} ${k}</body></message>`;
        if (k % 300 === 0) {
          s.send(chunk);
          chunk = "";
        }
      }
    }
    // a light connection in the middle of the flood
    const light = await plainLogin(port, "bob", "light");
    const t0 = Date.now();
    light.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    await light.until(/id="p1"/, 10_000);
    const pingMs = Date.now() - t0;
    await bob.until(new RegExp(`(?:id="s\\d-${N}"[\\s\\S]*){3}`), 30_000);
    for (let i = 0; i < 3; i++) {
      const seen = [...bob.buf.matchAll(new RegExp(`id="s${i}-(\\d+)"`, "g"))].map((m) => Number(m[1]));
      expect(seen).toEqual(Array.from({ length: N }, (_, k) => k + 1));
    }
    expect(pingMs).toBeLessThan(5000);
  }, 60_000);
});
