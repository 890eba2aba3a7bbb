// The server with the modules mamkit ships (src/builtins.ts) loadable by name:
// what the package, the CLI and the test kit start. The core's Server knows no
// feature; this is where the two meet.
import { builtinModules } from "./builtins.js";
import { Server as CoreServer, type ServerOptions } from "./core/server.js";

export type { ServerOptions };

export class Server extends CoreServer {
  constructor(opts: ServerOptions) {
    super({ ...opts, builtins: opts.builtins ?? builtinModules });
  }
}

export function createServer(opts: ServerOptions): Server {
  return new Server(opts);
}
