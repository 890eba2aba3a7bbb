// Questions on a terminal: a password (twice, without echo) and a yes/no.
import { createInterface } from "node:readline";
import { CliError } from "./args.js";

/** Asks on a terminal (twice, without echo); reads the first line of standard input otherwise. */
export async function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    let text = "";
    for await (const chunk of stdin) text += chunk;
    return text.split(/\r?\n/)[0] ?? "";
  }
  const ask = (q: string) =>
    new Promise<string>((resolve) => {
      const rl = createInterface({ input: stdin, output: process.stdout, terminal: true });
      const out = rl as unknown as { _writeToOutput: (s: string) => void };
      let prompted = false;
      out._writeToOutput = (s: string) => {
        if (!prompted) {
          process.stdout.write(s);
          prompted = true;
        }
      };
      rl.question(q, (answer) => {
        rl.close();
        process.stdout.write("\n");
        resolve(answer);
      });
    });
  const first = await ask(prompt);
  const again = await ask("Again: ");
  if (first !== again) throw new CliError("the passwords differ");
  return first;
}

/** Asks a yes/no question on the terminal (standard error); only "y" or "yes" is yes. */
export function confirm(question: string): Promise<boolean> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    let answered = false;
    rl.on("close", () => {
      if (!answered) resolve(false); // end of input (^D) is no
    });
    rl.question(`${question} [y/N] `, (answer) => {
      answered = true;
      rl.close();
      resolve(/^\s*y(es)?\s*$/i.test(answer));
    });
  });
}
