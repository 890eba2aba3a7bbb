// Interop: Debian's go-sendxmpp (a command-line client on the Go library
// go-xmpp, nobody here wrote either) against the real server on 127.0.0.1,
// with encryption required: STARTTLS (it sends "<starttls/>\n" in one write),
// SASL, binding; one instance listens as bob, another sends as alice, and
// both archives hold the message. Skipped where go-sendxmpp is missing
// (Debian: go-sendxmpp).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Running, startServer, waitFor } from "../e2e/helpers.js";

const SENDXMPP = "/usr/bin/go-sendxmpp";

describe.skipIf(!existsSync(SENDXMPP))("interop with go-sendxmpp (Go)", () => {
  let run: Running;
  let home: string;
  let listener: ChildProcess | undefined;
  let port: string;
  const env = () => ({ ...process.env, HOME: home }); // no configuration file of the machine's user
  const account = (user: string, password = `${user}-password`) => ["-n", "-u", `${user}@localhost`, "-p", password, "-j", `127.0.0.1:${port}`];

  function send(from: string, to: string, text: string, password?: string): Promise<{ code: number; output: string }> {
    return new Promise((resolve) => {
      const p = execFile(SENDXMPP, [...account(from, password), "--timeout", "10", to], { env: env(), timeout: 20_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` });
      });
      p.stdin!.end(text);
    });
  }

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), "mamkit-sendxmpp-"));
    run = await startServer({ c2s_require_encryption: true });
    port = new URL(run.tcp).port;
  });
  afterAll(async () => {
    listener?.kill("SIGKILL");
    await run?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it("logs in over STARTTLS, delivers to a listening go-sendxmpp, and both archives hold the message", async () => {
    let heard = "";
    listener = spawn(SENDXMPP, [...account("bob"), "-l"], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
    listener.stdout!.on("data", (d: Buffer) => {
      heard += d.toString();
    });
    const host = run.server.host("localhost");
    await waitFor(() => [...(host.sessionsOf("bob")?.values() ?? [])].some((s) => s.available) || undefined, 15_000);
    const text = "hello from go-sendxmpp, ünïcödé & <angle> brackets";
    const sent = await send("alice", "bob@localhost", text);
    expect(sent.output).not.toMatch(/error/i);
    expect(sent.code).toBe(0);
    await waitFor(() => heard.includes(text) || undefined, 10_000);
    const archive = host.openStore("archive", "archive");
    for (const user of ["alice", "bob"]) {
      const bodies = (await archive.find(user)).items.map((i) => i.stanza.getChildText("body"));
      expect(bodies).toEqual([text]);
    }
  }, 40_000);

  it("a wrong password is answered, and go-sendxmpp gives up with an error", async () => {
    const t0 = Date.now();
    const out = await send("alice", "bob@localhost", "never sent", "wrong");
    expect(out.code).not.toBe(0);
    expect(out.output).toMatch(/not-authorized|auth/i);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const bodies = (await run.server.host("localhost").openStore("archive", "archive").find("alice")).items.map((i) => i.stanza.getChildText("body"));
    expect(bodies).not.toContain("never sent");
  }, 30_000);
});
