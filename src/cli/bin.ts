// Process entry of the CLI (bin/mamkit.js loads the compiled form of this file).
import { main } from "./main.js";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // main reports its own failures; this is only for one it could not catch
    process.stderr.write(`mamkit: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
