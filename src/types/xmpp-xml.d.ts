// Type declarations for @xmpp/xml 0.14 and the parts of ltx it is built on
// (neither ships types). Only what mamkit uses is declared.
declare module "@xmpp/xml" {
  export type Node = Element | string;

  export class Element {
    constructor(name: string, attrs?: Record<string, string | number | undefined>);
    name: string;
    attrs: Record<string, any>;
    children: Node[];
    parent: Element | null;
    is(name: string, xmlns?: string): boolean;
    getName(): string;
    getNS(): string | undefined;
    findNS(prefix?: string): string | undefined;
    getXmlns(): Record<string, string>;
    attr(name: string): string | undefined;
    attr(name: string, value: string | number | null): this;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildByAttr(attr: string, value: string, xmlns?: string, recursive?: boolean): Element | undefined;
    getChildElements(): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    text(): string;
    text(value: string): this;
    c(name: string, attrs?: Record<string, string | number | undefined>): Element;
    cnode<T extends Element>(child: T): T;
    append(...nodes: Node[]): void;
    prepend(...nodes: Node[]): void;
    t(text: string): this;
    up(): Element;
    root(): Element;
    remove(el: Element | string, xmlns?: string): this;
    toString(): string;
    write(writer: (s: string) => void): void;
  }

  export function xml(
    name: string,
    attrs?: Record<string, string | number | undefined> | null,
    ...children: (Node | Node[] | null | undefined | false)[]
  ): Element;
  export default xml;
  export function escapeXML(s: string): string;
  export function escapeXMLText(s: string): string;
  export function unescapeXML(s: string): string;
  export function unescapeXMLText(s: string): string;

  export class Parser {
    constructor();
    on(event: "start" | "element" | "end", fn: (el: Element) => void): this;
    on(event: "error", fn: (err: Error) => void): this;
    write(data: string): void;
    end(data?: string): void;
  }
  export class XMLError extends Error {}
}

declare module "ltx/lib/parse.js" {
  import type { Element } from "@xmpp/xml";
  /** Parses one XML document into an element tree (throws on malformed XML). */
  export default function parse(data: string): Element;
}
