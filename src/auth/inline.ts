// Inline features of SASL2 (XEP-0388 <inline/>) and Bind 2 (XEP-0386), as the
// modules that own them register them (xmpp.js's sasl2.use / bind2.use): what
// they advertise, and their handler for the request element in <authenticate/>
// or <bind/>, whose answer is returned, not sent. One registry of each kind per
// host; a registration ends when its module unloads.
import type { Element } from "@xmpp/xml";
import type { ModuleApi } from "../core/module.js";
import type { Session, StreamControl } from "../core/session.js";

/** Where modules' stream features go, in order (higher first): SASL, SASL2, stream management, the rest. */
export const FEATURE_ORDER = { saslauth: 30, sasl2: 20, smacks: 10 } as const;

export interface InlineContext {
  /** The session being authenticated (or bound). */
  session: Session;
  stream: StreamControl;
  /** The request element (`<resume/>`, `<enable/>`, `<bind/>` …). */
  request: Element;
}

export interface InlineResult {
  /** Goes into `<success/>` (SASL2) or `<bound/>` (Bind 2). */
  reply?: Element;
  /** The stream now carries this session (a resumption): no further inline request is handled. */
  resumed?: Session;
}

export interface InlineFeature {
  readonly ns: string;
  /** The request element's name. */
  readonly name: string;
  /** Lower runs (and is advertised) first: a resumption before binding. Default 0; ties go by namespace. */
  readonly order?: number;
  /** What goes into the advertised `<inline/>`, if anything. */
  advertise?(origin: Session): Element | undefined;
  /** Waited for before any request of the element is handled (e.g. a resumption waits for the old session's acks to be durable). */
  prepare?(ctx: InlineContext): Promise<void>;
  handle(ctx: InlineContext): InlineResult | undefined;
}

export class InlineRegistry {
  private features: InlineFeature[] = [];

  use(module: ModuleApi, feature: InlineFeature): void {
    // a fixed order, whatever order the modules load in
    this.features = [...this.features, feature].sort((a, b) => (a.order ?? 0) - (b.order ?? 0) || (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
    module.onUnload(() => {
      this.features = this.features.filter((f) => f !== feature);
    });
  }

  /** Adds what every feature advertises into `inline`. */
  advertise(inline: Element, origin: Session): void {
    for (const f of this.features) {
      const el = f.advertise?.(origin);
      if (el) inline.cnode(el);
    }
  }

  /** The requests in `parent` that a feature handles, in the features' order. */
  requests(parent: Element): [InlineFeature, Element][] {
    const out: [InlineFeature, Element][] = [];
    for (const f of this.features) {
      const el = parent.getChild(f.name, f.ns);
      if (el) out.push([f, el]);
    }
    return out;
  }
}

const sasl2Registries = new WeakMap<object, InlineRegistry>();
const bind2Registries = new WeakMap<object, InlineRegistry>();

function registryOf(map: WeakMap<object, InlineRegistry>, module: ModuleApi): InlineRegistry {
  let r = map.get(module.hostView);
  if (!r) {
    r = new InlineRegistry();
    map.set(module.hostView, r);
  }
  return r;
}

/** SASL2's inline features on this module's host (`<authentication><inline/>`). */
export const sasl2Inline = (module: ModuleApi): InlineRegistry => registryOf(sasl2Registries, module);
/** Bind 2's inline features on this module's host (`<bind><inline/>`). */
export const bind2Inline = (module: ModuleApi): InlineRegistry => registryOf(bind2Registries, module);
