// mod_smacks: XEP-0198 Stream Management v3 (urn:xmpp:sm:3): acks both
// ways, the queue of unacknowledged stanzas with delivery checkpoints,
// hibernation of a dropped connection and resumption.
import type { Element } from "@xmpp/xml";
import { randomBytes } from "node:crypto";
import { defineModule } from "../core/module.js";
import { archivedOf } from "../mam/index.js";
import type { StanzaEvent } from "../core/delivery.js";
import type { Session } from "../core/session.js";
import { errorReply, NS_CLIENT, NS_STANZAS, xml } from "../xmpp/stanza.js";
import { H_MOD, SmQueue } from "./queue.js";
import { failed, NS_SM, SmSink, smElement, STATE, type State } from "./state.js";

export { addCheckpoint, type DeliveryWatch, NS_SM, type SmState, smState, watchDelivery } from "./state.js";
import { bind2Inline, FEATURE_ORDER, sasl2Inline } from "../auth/inline.js";

const COUNTED = new Set(["message", "presence", "iq"]);

export default defineModule(
  "smacks",
  (module) => {
    const {
      smacks_hibernation_time: hibernationTime,
      smacks_max_queue_size: maxQueue,
      smacks_max_unacked_stanzas: maxUnacked,
      smacks_max_ack_delay: maxAckDelay,
    } = module.options;
    /** Resumable sessions of this host by resumption id (live or hibernating). */
    const resumable = new Map<string, Session>();

    const stateOf = (s: Session) => s.get(STATE);

    function requestAck(session: Session, st: State): void {
      st.requestTimer?.cancel();
      st.requestTimer = undefined;
      st.immediate = undefined;
      if (session.closed || session.hibernating || st.awaitingAck || st.queue.unacked === 0) return;
      st.awaitingAck = true;
      session.sendNonza(smElement("r"));
    }

    function scheduleAck(session: Session, st: State, soon = true): void {
      if (st.awaitingAck || st.immediate) return;
      if (soon && st.queue.unacked > maxUnacked) {
        // after the current burst of stanzas, not after each one
        st.immediate = setImmediate(() => requestAck(session, st));
      } else if (!st.requestTimer && Number.isFinite(maxAckDelay)) {
        // on the host's clock (the test kit's ManualClock moves it)
        st.requestTimer = module.addTimerMs(maxAckDelay * 1000, () => {
          requestAck(session, st);
        });
      }
    }

    function onStanza(st: State) {
      return (stanza: Element, session: Session) => {
        st.queue.push(stanza);
        st.sink.transport?.deliver(stanza, session);
        for (const watch of st.watches) {
          // placed right after the stanza entered the queue: it covers exactly what was sent so far
          const acked = watch(stanza);
          if (acked) st.queue.addCheckpoint(acked);
        }
        if (st.queue.unacked > maxQueue) {
          module.log.warn({ sid: session.id, max: maxQueue }, "stream management queue full: closing the session");
          session.streamError("policy-violation", "too many unacknowledged stanzas");
          return;
        }
        scheduleAck(session, st);
      };
    }

    function stopTimers(st: State): void {
      st.requestTimer?.cancel();
      st.hibernationTimer?.cancel();
      if (st.immediate) clearImmediate(st.immediate);
      st.requestTimer = st.hibernationTimer = st.immediate = undefined;
    }

    // A stanza counts in h once it was handled and what it stored is durable (the
    // session tells, in order): an <a/> never acknowledges what a crash could lose.
    const countInbound = (st: State) => (stanza: Element) => {
      const ns = stanza.attrs.xmlns as string | undefined;
      if (COUNTED.has(stanza.name) && (ns === undefined || ns === NS_CLIENT)) st.queue.received++;
    };

    function processAck(session: Session, st: State, hAttr: unknown): boolean {
      const h = Number(hAttr);
      if (typeof hAttr !== "string" || !/^\d+$/.test(hAttr) || h >= H_MOD) {
        session.streamError("invalid-xml", "the h attribute must be an integer from 0 to 2^32-1");
        return false;
      }
      const r = st.queue.ack(h);
      if (r.kind === "too-high") {
        // XEP-0198 §4: more acknowledged than sent is a stream error
        session.streamError(
          "undefined-condition",
          "You acknowledged more stanzas than we sent",
          xml("handled-count-too-high", { xmlns: NS_SM, h: String(r.h), "send-count": String(r.sent) }),
        );
        return false;
      }
      if (r.kind === "backwards") module.log.debug({ sid: session.id, h }, "ignored an ack that went backwards");
      return true;
    }

    // ---- enable, r, a ------------------------------------------------------------------
    module.hook(`stanza/${NS_SM}:enable`, ({ origin, stanza }: StanzaEvent) => {
      if (!origin) return undefined;
      enable(origin, stanza, (answer) => origin.sendNonza(answer));
      return true;
    });

    /** Turns stream management on; `answer` gets <enabled/> or <failed/> (sent, or put inside Bind 2's <bound/>). */
    function enable(origin: Session, stanza: Element, answer: (el: Element) => void): void {
      if (!origin.jid || stateOf(origin)) {
        answer(failed("unexpected-request"));
        return;
      }
      const wantResume = stanza.attrs.resume === "true" || stanza.attrs.resume === "1";
      const id = randomBytes(18).toString("base64url");
      const st = {
        id,
        resumable: wantResume,
        queue: new SmQueue((err) => module.log.error({ err, sid: origin.id }, "error in a delivery checkpoint")),
        awaitingAck: false,
        requestTimer: undefined,
        immediate: undefined,
        hibernationTimer: undefined,
        watches: new Set(),
      } as Omit<State, "sink"> as State;
      st.sink = new SmSink(origin.output, onStanza(st));
      origin.set(STATE, st);
      origin.setOutput(st.sink);
      origin.onSettled(countInbound(st));
      const attrs: Record<string, string> = { id };
      if (wantResume) {
        attrs.resume = "true";
        if (Number.isFinite(hibernationTime)) attrs.max = String(Math.round(hibernationTime));
        resumable.set(id, origin);
      }
      answer(smElement("enabled", attrs));
      module.fire("smacks-enabled", { session: origin });
    }

    // Advertised after authentication, for the stream that binds next (RFC 6120 style), and
    // inline: a resumption in SASL2's <authenticate/> (before anything binds), an
    // <enable/> in Bind 2's <bind/>.
    module.hook(
      "stream-features",
      ({ origin, features }: { origin: Session | undefined; features: Element }) => {
        if (origin?.stream?.authenticated && origin.jid === undefined) features.c("sm", { xmlns: NS_SM });
        return undefined;
      },
      FEATURE_ORDER.smacks,
    );
    sasl2Inline(module).use(module, {
      ns: NS_SM,
      name: "resume",
      order: -10,
      advertise: () => smElement("sm"),
      prepare: async ({ session, request }) => {
        // (input comes back once the element's requests ran: sasl2 handles the resumption right after)
        const stopped = await settledBefore(session, request);
        if (stopped) setImmediate(() => stopped.startInput());
      },
      handle({ session, request }) {
        let reply: Element | undefined;
        const resumed = resume(session, request, (answer) => {
          reply = answer;
        });
        return resumed ? { reply, resumed } : { reply };
      },
    });
    bind2Inline(module).use(module, {
      ns: NS_SM,
      name: "enable",
      order: -1, // advertised before carbons', as it always was
      advertise: () => xml("feature", { var: NS_SM }),
      handle({ session, request }) {
        let reply: Element | undefined;
        enable(session, request, (answer) => {
          reply = answer;
        });
        return { reply };
      },
    });

    // <r/> and <a/> on a session without stream management are ignored, as Prosody does
    // (not a stream error: a client may send one early, or after a failed <enable/>)
    module.hook(`stanza/${NS_SM}:r`, ({ origin }: StanzaEvent) => {
      const st = origin && stateOf(origin);
      if (!origin) return undefined;
      if (!st) return true;
      // answered once everything received before it is durable
      void origin.settled().then(() => origin.sendNonza(smElement("a", { h: String(st.queue.received % H_MOD) })));
      return true;
    });

    module.hook(`stanza/${NS_SM}:a`, ({ origin, stanza }: StanzaEvent) => {
      const st = origin && stateOf(origin);
      if (!origin) return undefined;
      if (!st) return true;
      st.awaitingAck = false;
      // an ack that leaves stanzas unacknowledged is not answered with an
      // immediate <r/> (a client whose count lags would ping-pong forever):
      // new stanzas, or smacks_max_ack_delay, ask again
      if (processAck(origin, st, stanza.attrs.h) && st.queue.unacked > 0) scheduleAck(origin, st, false);
      return true;
    });

    // A connection silent for c2s_read_timeout: ask for an ack, which the client must
    // answer (the connection drops it, into hibernation, if it does not)
    module.hook("c2s-read-timeout", ({ session }: { session: Session }) => {
      const st = stateOf(session);
      if (!st || session.closed || session.hibernating) return undefined;
      st.requestTimer?.cancel();
      if (st.immediate) clearImmediate(st.immediate);
      st.requestTimer = st.immediate = undefined;
      st.awaitingAck = true;
      session.sendNonza(smElement("r"));
      return true;
    });

    // ---- hibernation -------------------------------------------------------------------
    module.hook("session-transport-lost", ({ session, reason }: { session: Session; reason: string }) => {
      const st = stateOf(session);
      if (!st?.resumable) return undefined;
      session.hibernating = true;
      st.sink.transport = undefined;
      stopTimers(st);
      st.awaitingAck = false;
      if (Number.isFinite(hibernationTime)) {
        st.hibernationTimer = module.addTimerMs(hibernationTime * 1000, () => {
          module.log.debug({ sid: session.id }, "hibernation timed out");
          session.close("hibernation timeout");
        });
      }
      module.log.debug({ sid: session.id, reason, unacked: st.queue.unacked }, "session hibernating");
      module.fire("smacks-hibernation-start", { session, queue: st.queue.pending() });
      return true;
    });

    // ---- resumption --------------------------------------------------------------------
    module.hook(`stanza/${NS_SM}:resume`, ({ origin, stanza }: StanzaEvent) => {
      if (!origin) return undefined;
      void settledBefore(origin, stanza).then((stopped) => {
        if (!origin.closed) resume(origin, stanza, (answer, from) => from.sendNonza(answer));
        stopped?.startInput();
      });
      return true;
    });

    /**
     * What the old connection sent counts in h once it is durable: a resumption
     * waits for that, so that its h leaves out nothing the client would then
     * send again (and the recipient get twice).
     */
    async function settledBefore(origin: Session, stanza: Element): Promise<Session | undefined> {
      const previd = stanza.attrs.previd as string | undefined;
      const target = previd === undefined ? undefined : resumable.get(previd);
      if (!target || target.closed) return undefined;
      const sameClient = target.jid?.local === origin.authUser && target.clientId?.toLowerCase() === origin.clientId?.toLowerCase();
      // the client has left the old connection: what still comes on it is not counted (it is
      // sent again after the resumption), and what it queued is handled before h is told
      const stop = sameClient && !target.hibernating;
      if (stop) target.stopInput();
      await target.idle();
      await target.settled();
      return stop ? target : undefined;
    }

    /**
     * Resumes the session `<resume previd h/>` names on `origin`'s connection;
     * `answer` gets <resumed/> or <failed/> with the session to send it through
     * (sent, or put inside SASL2's <success/>). Returns the resumed session.
     */
    function resume(origin: Session, stanza: Element, answer: (el: Element, from: Session) => void): Session | undefined {
      if (origin.jid) {
        answer(failed("unexpected-request"), origin);
        return undefined;
      }
      const previd = stanza.attrs.previd as string | undefined;
      const target = previd === undefined ? undefined : resumable.get(previd);
      const st = target && stateOf(target);
      // another account's id is as unknown as an expired one; so is another client's (both
      // named by SASL2 user-agent ids that differ): its acks must not count for this one
      const otherClient = target !== undefined && target.clientId?.toLowerCase() !== origin.clientId?.toLowerCase();
      if (!target || !st || target.closed || target.jid?.local !== origin.authUser || otherClient) {
        answer(failed("item-not-found"), origin);
        return undefined;
      }
      const hAttr = stanza.attrs.h as string | undefined;
      if (hAttr === undefined || !/^\d+$/.test(hAttr) || Number(hAttr) >= H_MOD) {
        answer(failed("bad-request"), origin);
        return undefined;
      }
      const acked = st.queue.ack(Number(hAttr));
      if (acked.kind === "too-high") {
        answer(
          smElement(
            "failed",
            { h: String(st.queue.received % H_MOD) },
            xml("undefined-condition", { xmlns: NS_STANZAS }),
            xml("handled-count-too-high", { xmlns: NS_SM, h: hAttr, "send-count": String(acked.sent) }),
          ),
          origin,
        );
        target.close("resumed with an impossible ack");
        return undefined;
      }
      const old = st.sink.transport;
      // the new connection carries the session from now on — before the old one is told,
      // so that closing the old connection no longer ends the session
      st.sink.transport = origin.output;
      if (old && !target.hibernating) {
        // the old connection is replaced by the new one
        const err = xml("stream:error", {}, xml("conflict", { xmlns: "urn:ietf:params:xml:ns:xmpp-streams" }));
        old.deliverNonza?.(err, target);
        old.close?.("replaced by a resumed connection", target);
      }
      stopTimers(st);
      st.awaitingAck = false;
      target.hibernating = false;
      origin.stream?.carry(target); // the new connection now belongs to the resumed session
      origin.closed = true;
      answer(smElement("resumed", { previd: st.id, h: String(st.queue.received % H_MOD) }), target);
      for (const s of st.queue.pending()) st.sink.transport.deliver(s, target);
      module.fire("smacks-hibernation-end", { session: target, resumed: true });
      scheduleAck(target, st);
      return target;
    }

    // ---- the end of a session: what the client never acknowledged ----------------------
    module.hook(
      "pre-resource-unbind",
      ({ session }: { session: Session }) => {
        const st = stateOf(session);
        if (!st) return undefined;
        stopTimers(st);
        resumable.delete(st.id);
        const unacked = st.queue.discard();
        for (const stanza of unacked) handleUndelivered(session, stanza);
        return undefined;
      },
      100,
    );

    /**
     * As Prosody: an unacknowledged message that mam archived for this user is
     * left to the archive (the client fetches it with MAM); other messages and
     * iq requests are bounced to their sender; `delivery/failure` may take any.
     */
    function handleUndelivered(session: Session, stanza: Element): void {
      if (module.fire("delivery/failure", { session, stanza }) !== undefined) return;
      const type = stanza.attrs.type as string | undefined;
      if (type === "error" || type === "result" || stanza.attrs.from === session.jid?.full) return;
      if (stanza.name === "message") {
        if (type === "groupchat" || type === "headline") return;
        if (archivedOf(stanza)?.user === session.jid?.local) return;
        const bounce = errorReply(stanza, "wait", "recipient-unavailable", "the recipient's connection was lost");
        module.send(bounce);
      } else if (stanza.name === "iq") {
        module.send(errorReply(stanza, "cancel", "service-unavailable"));
      }
    }

    module.onUnload(() => {
      for (const s of resumable.values()) {
        const st = stateOf(s);
        if (st) stopTimers(st);
      }
    });
  },
  {
    options: {
      smacks_hibernation_time: { type: "period", default: 600 },
      smacks_max_queue_size: { type: "number", min: 1, integer: true, default: 500 },
      smacks_max_unacked_stanzas: { type: "number", min: 0, integer: true, default: 0 },
      smacks_max_ack_delay: { type: "period", default: 30 },
    },
  },
);
