// The cost of reading the client's XML stream (src/c2s/xml-stream.ts): a
// realistic mix of stanzas fed in 16 KiB reads, as a TCP socket hands them
// over, counted once the parser has built each stanza. In the same run, the
// non-validating @xmpp/xml (ltx) parser that mamkit used before the strict one,
// fed the same reads whole (no per-stanza size count, no checks): the ratio is
// what strictness costs.
import { Parser } from "@xmpp/xml";
import { XmlStreamParser } from "../src/c2s/xml-stream.js";

const HEADER =
  "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

function sampleStanzas(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    switch (i % 4) {
      case 0:
        out.push(
          `<message to='bob@localhost' type='chat' id='m${i}'><body>Hello, how are you? This is a typical short chat message.</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='o${i}'/></message>`,
        );
        break;
      case 1:
        out.push(`<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='${i}'/>`);
        break;
      case 2:
        out.push(
          `<iq type='set' id='q${i}'><query xmlns='urn:xmpp:mam:2' queryid='f${i}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>bob@localhost</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set></query></iq>`,
        );
        break;
      default:
        out.push(`<message to='carol@localhost' type='chat' id='e${i}'><body>Fish &amp; chips &lt;3 — “quoted” ünïcödé 🎉</body></message>\n`);
    }
  }
  return out;
}

function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function best(runs: number, fn: () => number): { ms: number; elements: number } {
  let ms = Number.POSITIVE_INFINITY;
  let elements = 0;
  for (let round = 0; round < runs; round++) {
    const t0 = process.hrtime.bigint();
    elements = fn();
    ms = Math.min(ms, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms, elements };
}

function strict(reads: string[]): number {
  let count = 0;
  const parser = new XmlStreamParser(256 * 1024, {
    onStart: () => {},
    onElement: () => void count++,
    onEnd: () => {},
    onError: (c, t) => {
      throw new Error(`${c}: ${t}`);
    },
  });
  parser.write(HEADER);
  for (const r of reads) parser.write(r);
  return count;
}

function lenient(reads: string[]): number {
  let count = 0;
  const parser = new Parser();
  parser.on("element", () => void count++);
  parser.write(HEADER);
  for (const r of reads) parser.write(r);
  return count;
}

export function parseBench(n = 200_000): void {
  const body = sampleStanzas(n).join("");
  const reads = chunks(body, 16 * 1024);
  const mb = Buffer.byteLength(body, "utf8") / 1e6;
  const line = (r: { ms: number; elements: number }) =>
    `${Math.round((r.elements / r.ms) * 1000).toLocaleString("en-US")} elements/s, ${(mb / (r.ms / 1000)).toFixed(1)} MB/s  (${r.elements} elements, ${mb.toFixed(1)} MB in ${r.ms.toFixed(1)} ms, best of 5)`;
  const a = best(5, () => strict(reads));
  const b = best(5, () => lenient(reads));
  console.log(`parse   client stream, 16 KiB reads, strict (saxes, per-stanza limit): ${line(a)}`);
  console.log(`parse   same reads, @xmpp/xml's lenient parser (before): ${line(b)}; strict at ${Math.round((b.ms / a.ms) * 100)} % of its speed`);
}

if (import.meta.url === `file://${process.argv[1]}`) parseBench();
