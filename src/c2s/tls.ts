// Certificates per host: from the `ssl` option ({ certificate, key } files),
// or a self-signed one generated at first start into <data folder>/certs.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import { generate } from "selfsigned";
import type { Server } from "../core/server.js";
import { HostError } from "../core/errors.js";

export class TlsProvider {
  private readonly contexts = new Map<string, SecureContext>();

  has(host: string): boolean {
    return this.contexts.has(host);
  }

  context(host: string): SecureContext | undefined {
    return this.contexts.get(host);
  }

  /** Loads or generates a certificate for every host. */
  static async load(server: Server, dataDir: string): Promise<TlsProvider> {
    const p = new TlsProvider();
    for (const host of server.hosts.values()) {
      const ssl = host.option("ssl") as { certificate: string; key: string } | undefined;
      let cert: string;
      let key: string;
      if (ssl) {
        try {
          cert = readFileSync(ssl.certificate, "utf8");
          key = readFileSync(ssl.key, "utf8");
        } catch (err) {
          throw new HostError("MAMKIT_ERR_CONFIG_FILE", `ssl for ${host.name}: cannot read ${(err as Error).message}`, { cause: err });
        }
      } else {
        const dir = join(dataDir, "certs");
        const certFile = join(dir, `${host.name}.crt`);
        const keyFile = join(dir, `${host.name}.key`);
        if (!existsSync(certFile) || !existsSync(keyFile)) {
          mkdirSync(dir, { recursive: true });
          const pems = await generate([{ name: "commonName", value: host.name }], {
            keySize: 2048,
            notAfterDate: new Date(Date.now() + 3650 * 86_400_000),
            algorithm: "sha256",
            extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: host.name }] }],
          });
          writeFileSync(keyFile, pems.private, { mode: 0o600 });
          writeFileSync(certFile, pems.cert);
          server.log.info({ host: host.name, certificate: certFile }, "generated a self-signed certificate (set `ssl` to use your own)");
        }
        cert = readFileSync(certFile, "utf8");
        key = readFileSync(keyFile, "utf8");
      }
      try {
        p.contexts.set(host.name, createSecureContext({ cert, key }));
      } catch (err) {
        const where = ssl ? `ssl for ${host.name} (${ssl.certificate}, ${ssl.key})` : `the generated certificate for ${host.name}`;
        throw new HostError(
          "MAMKIT_ERR_CONFIG_FILE",
          `${where}: expected a PEM certificate and its matching PEM private key: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    return p;
  }
}
