// Unknown module names: where they are named, a close known name, the known ones;
// a disabled name nobody provides is only a warning.
import { describe, expect, it } from "vitest";
import { closestName, editDistance, HostError, unknownModuleError } from "../../src/core/errors.js";
import { createServer } from "../../src/server.js";
import { captureLog } from "../helpers/log.js";

describe("unknown modules", () => {
  const start = (config: Record<string, unknown>) => createServer({ config: { storage: "memory", ...config }, logger: captureLog().logger });
  function messageOf(config: Record<string, unknown>): string {
    try {
      void start(config).stop();
    } catch (e) {
      expect(e).toBeInstanceOf(HostError);
      expect((e as HostError).code).toBe("MAMKIT_ERR_MODULE_UNKNOWN");
      return (e as Error).message;
    }
    throw new Error("started");
  }

  it("names the position, a close known name, and the known ones", () => {
    const enabled = ["saslauth", "sasl2", "bind2", "roster", "presence", "disco", "ping", "smacks", "carbons", "mam", "mam_smart_retenton"];
    expect(messageOf({ modules_enabled: enabled, hosts: { localhost: {} } })).toBe(
      'config: modules_enabled[10]: unknown module "mam_smart_retenton" (did you mean "mam_smart_retention"?); known modules: ' +
        "auth_internal_hashed, bind2, carbons, disco, mam, mam_smart_retention, ping, presence, roster, sasl2, saslauth, smacks",
    );
  });

  it("names the host section it is in", () => {
    expect(messageOf({ modules_enabled: ["ping"], hosts: { "a.example": {}, "b.example": { modules_enabled: ["pnig"] } } })).toMatch(
      /^config: hosts\["b.example"\]\.modules_enabled\[0\]: unknown module "pnig" \(did you mean "ping"\?\); known modules: /,
    );
  });

  it("says nothing it cannot back up", () => {
    expect(messageOf({ modules_enabled: ["http_upload"], hosts: { x: {} } })).toMatch(/^config: modules_enabled\[0\]: unknown module "http_upload"; known modules: /);
  });

  it("an unknown name that is disabled again is not loaded, so not an error", async () => {
    const { logger, lines } = captureLog();
    const server = createServer({
      config: { storage: "memory", modules_enabled: ["ping", "nosuch"], modules_disabled: ["nosuch", "mam_typo"], hosts: { x: { modules_disabled: ["pong"] } } },
      logger,
    });
    expect([...server.host("x").modules.keys()]).toEqual(["auth_internal_hashed", "ping"]);
    // modules_disabled naming no known module: a warning each, as in Prosody
    expect(lines.filter((l) => l.level === 40).map((l) => [l.key, l.msg])).toEqual([
      ["modules_disabled[0]", 'modules_disabled names no known module "nosuch" (ignored)'],
      ["modules_disabled[1]", 'modules_disabled names no known module "mam_typo" (ignored)'],
      ['hosts["x"].modules_disabled[0]', 'modules_disabled names no known module "pong" (ignored)'],
    ]);
    await server.stop();
  });

  it("the account module `authentication` asks for is named by that key", () => {
    const bare = (config: Record<string, unknown>) => {
      try {
        createServer({ config: { storage: "memory", ...config }, builtins: [], logger: captureLog().logger });
      } catch (e) {
        return (e as Error).message;
      }
      return "started";
    };
    expect(bare({ hosts: { x: {} } })).toBe('config: authentication (default "internal_hashed"): unknown module "auth_internal_hashed"; known modules: none');
    expect(bare({ authentication: "internal_hashed", hosts: { x: {} } })).toMatch(/^config: authentication: unknown module/);
    expect(bare({ hosts: { x: { authentication: "internal_hashed" } } })).toMatch(/^config: hosts\["x"\]\.authentication: unknown module/);
  });
});

describe("did you mean", () => {
  const known = ["bind2", "carbons", "disco", "mam", "mam_smart_retention", "ping", "presence", "roster", "sasl2", "saslauth", "smacks"];

  it("suggests a name at most two edits away, a written-out mod_ prefix, or a known name it begins or ends", () => {
    expect(closestName("mam_smart_retenton", known)).toBe("mam_smart_retention"); // one letter dropped
    expect(closestName("carbnos", known)).toBe("carbons"); // two letters swapped: one edit
    expect(closestName("presense", known)).toBe("presence");
    expect(closestName("rooster", known)).toBe("roster");
    expect(closestName("mod_mam", known)).toBe("mam"); // Prosody's file name
    expect(closestName("smart_retention", known)).toBe("mam_smart_retention"); // the end of a known name
    expect(closestName("sasl", known)).toBe("sasl2"); // one edit beats the prefix of saslauth
    expect(closestName("disc", known)).toBe("disco");
  });

  it("suggests nothing far off, and nothing for very short names", () => {
    expect(closestName("http_upload", known)).toBeUndefined();
    expect(closestName("mam_typo", known)).toBeUndefined();
    expect(closestName("xy", known)).toBeUndefined();
    expect(closestName("m", known)).toBeUndefined();
    expect(closestName("anything", [])).toBeUndefined();
  });

  it("counts edits as optimal string alignment", () => {
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("abc", "abc")).toBe(0);
    expect(editDistance("ab", "ba")).toBe(1);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("ca", "abc")).toBe(3); // OSA, not full Damerau (2)
  });

  it("unknownModuleError composes with any list of known names", () => {
    const e = unknownModuleError("extra_mod", 'hosts["a.example"].modules_enabled[2]', new Set(["extra_mode", "ping"]));
    expect(e.code).toBe("MAMKIT_ERR_MODULE_UNKNOWN");
    expect(e.message).toBe(
      'config: hosts["a.example"].modules_enabled[2]: unknown module "extra_mod" (did you mean "extra_mode"?); known modules: extra_mode, ping',
    );
    expect(unknownModuleError("x_y", undefined, ["ping"]).message).toBe('unknown module "x_y"; known modules: ping');
  });
});
