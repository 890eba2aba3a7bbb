// `mamkit serve`: runs the server until SIGINT/SIGTERM, which close every
// stream with system-shutdown. On SQLite it holds the serve lock next to the
// database while it runs (see ../lock.ts), for deluser's "in use" warning.
import { Server } from "../../server.js";
import { type CommandContext, EXIT_OK } from "../args.js";
import { holdServeLock, type ServeLock } from "../lock.js";

export async function serve(ctx: CommandContext): Promise<number> {
  const server = await Server.fromFile(ctx.config);
  let lock: ServeLock | undefined;
  try {
    try {
      lock = holdServeLock(server.config.storage);
      if (lock) server.log.debug({ lock: lock.path }, "holding the serve lock");
    } catch (err) {
      // (only a warning is lost: deluser will not see this server)
      server.log.warn({ err }, "could not take the serve lock next to the database; mamkit deluser will not know this server uses it");
    }
    await server.listen(); // "server started" is logged once every listener is bound
  } catch (err) {
    lock?.release();
    await server.stop();
    throw err;
  }
  return new Promise((resolve) => {
    const stop = async (signal: string) => {
      server.log.info({ signal }, "shutting down");
      await server.stop();
      lock?.release();
      resolve(EXIT_OK);
    };
    process.once("SIGINT", () => void stop("SIGINT"));
    process.once("SIGTERM", () => void stop("SIGTERM"));
  });
}
