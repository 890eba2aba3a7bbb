// Interop: the real server on 127.0.0.1 against a second independent Python
// library, aioxmpp (test/interop/aioxmpp_check.py: STARTTLS with SCRAM,
// stream management with a resumption after the network went away, roster
// with pushes, chat with stanza-ids, disco, ping, a MAM query). Skipped where
// /usr/bin/python3 cannot import aioxmpp (Debian: python3-aioxmpp).
import { afterAll, beforeAll, describe, it } from "vitest";
import { type Running, startServer } from "../e2e/helpers.js";
import { expectChecksPass, pythonHas, SCRIPT_TIMEOUT_MS } from "./python-check.js";

describe.skipIf(!pythonHas("aioxmpp"))("interop with aioxmpp (Python)", () => {
  let run: Running;
  beforeAll(async () => {
    run = await startServer();
  });
  afterAll(async () => {
    await run?.stop();
  });

  it("passes every check of aioxmpp_check.py", async () => {
    await expectChecksPass("./aioxmpp_check.py", run.tcp, ["login", "stream-management", "ping", "disco", "roster", "chat", "resume", "mam"]);
  }, SCRIPT_TIMEOUT_MS + 15_000);
});
