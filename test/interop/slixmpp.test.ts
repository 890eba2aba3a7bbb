// Interop: the real server on 127.0.0.1 against an independent client
// library, Python slixmpp (test/interop/slixmpp_check.py does the XMPP side:
// login with STARTTLS and SCRAM, XEP-0198 acks and resumption, stanza-ids,
// carbons, MAM paging and errors, disco, ping, roster). Skipped where
// /usr/bin/python3 cannot import slixmpp (Debian: python3-slixmpp).
import { afterAll, beforeAll, describe, it } from "vitest";
import { type Running, startServer } from "../e2e/helpers.js";
import { expectChecksPass, pythonHas, SCRIPT_TIMEOUT_MS } from "./python-check.js";

describe.skipIf(!pythonHas("slixmpp"))("interop with slixmpp (Python)", () => {
  let run: Running;
  beforeAll(async () => {
    run = await startServer();
  });
  afterAll(async () => {
    await run?.stop();
  });

  it("passes every check of slixmpp_check.py", async () => {
    await expectChecksPass("./slixmpp_check.py", run.tcp, [
      "login", "login-scram-sha-1", "stream-management", "chat", "carbons", "mam-send", "mam-paging",
      "mam-with", "mam-unknown-field", "mam-forbidden", "disco", "ping", "roster", "resume",
    ]);
  }, SCRIPT_TIMEOUT_MS + 15_000);
});
