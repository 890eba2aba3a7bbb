// The cost of reading the client's XML stream (src/c2s/xml-stream.ts): a
// realistic mix of stanzas fed in 16 KiB reads, as a TCP socket hands them
// over, counted once the parser has built each stanza.
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

export function parseBench(n = 200_000): void {
  const stanzas = sampleStanzas(n);
  const body = stanzas.join("");
  const reads = chunks(body, 16 * 1024);
  const bytes = Buffer.byteLength(body, "utf8");
  let best = Number.POSITIVE_INFINITY;
  let elements = 0;
  for (let round = 0; round < 5; round++) {
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
    const t0 = process.hrtime.bigint();
    for (const r of reads) parser.write(r);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
    elements = count;
  }
  const perSec = Math.round((elements / best) * 1000).toLocaleString("en-US");
  const mbps = (bytes / 1e6 / (best / 1000)).toFixed(1);
  console.log(`parse   client stream, 16 KiB reads: ${perSec} elements/s, ${mbps} MB/s  (${elements} elements, ${(bytes / 1e6).toFixed(1)} MB in ${best.toFixed(1)} ms, best of 5)`);
}

if (import.meta.url === `file://${process.argv[1]}`) parseBench();
