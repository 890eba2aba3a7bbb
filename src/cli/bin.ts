// Process entry of the CLI (bin/mamkit.js loads the compiled form of this file).
import { main } from "./main.js";

process.exitCode = main(process.argv.slice(2));
