#!/usr/bin/env python3
"""Interop check of a running mamkit server with slixmpp (Python), a client
library nobody on the project wrote.

Usage:
  /usr/bin/python3 test/interop/slixmpp_check.py --host 127.0.0.1 --port N \
      --domain localhost [--alice alice:alice-password] [--bob bob:bob-password] [--debug]

Prints one line per check, `ok <name>`, `FAIL <name>: <reason>` or
`skip <name>: <reason>`, plus `# ...` lines with what was observed; exits 1
if any check failed. Everything is bounded by timeouts (the whole run by
--deadline seconds, 55 by default). With --debug the XML exchanged is logged
to stderr (slixmpp's DEBUG logging).
"""

import argparse
import asyncio
import logging
import os
import socket
import ssl
import struct
import sys
import time
import uuid
from datetime import datetime

try:
    import slixmpp
    from slixmpp import ClientXMPP, JID
    from slixmpp.exceptions import IqError, IqTimeout
    from slixmpp.plugins.xep_0198 import stanza as sm_stanza
    from slixmpp.stanza import Iq, Message, Presence
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath, StanzaPath
except ImportError as e:  # pragma: no cover
    print(f"FAIL import: slixmpp is not importable by {sys.executable}: {e}")
    sys.exit(2)

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

CHECK_TIMEOUT = 12.0  # seconds, per check
RUN_ID = uuid.uuid4().hex[:8]  # makes every body unique to this run


def q(ns, name):
    return "{%s}%s" % (ns, name)


async def wait_for(pred, timeout=5.0, what="condition"):
    """Poll `pred` until it returns something truthy, or raise."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)


def stanza_id_of(xml, by=None):
    """The XEP-0359 <stanza-id/> of a message element (optionally with `by`)."""
    for sid in xml.findall(q(NS_SID, "stanza-id")):
        if by is None or sid.get("by") == by:
            return sid
    return None


def body_of(xml):
    b = xml.find(q(NS_CLIENT, "body"))
    return b.text if b is not None else None


def carbon_of(xml, kind):
    """(wrapper <sent>/<received>, forwarded inner <message>) or (None, None)."""
    c = xml.find(q(NS_CARBONS, kind))
    if c is None:
        return None, None
    fwd = c.find(q(NS_FORWARD, "forwarded"))
    inner = fwd.find(q(NS_CLIENT, "message")) if fwd is not None else None
    return c, inner


class Client(ClientXMPP):
    """A slixmpp client that records what it receives."""

    def __init__(self, label, jid, password, address):
        super().__init__(jid, password)
        self.label = label
        self.address_ = address
        # the server's certificate is self-signed: STARTTLS without verification
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.ssl_context = ctx
        self.whitespace_keepalive = False
        for p in ("xep_0030", "xep_0004", "xep_0059", "xep_0297", "xep_0198",
                  "xep_0199", "xep_0280", "xep_0313", "xep_0359", "xep_0203"):
            self.register_plugin(p)
        self["xep_0198"].allow_resume = True

        self.messages = []  # (time, raw xml) of every <message/> received
        self.roster_pushes = []
        self.server_r = 0  # <r/> received from the server
        self.acks_in = []  # h of every <a/> received from the server
        self.acks_out = []  # (h we sent, our own count of handled stanzas)
        self.counted = 0  # our own count of stanzas received since <enabled/>
        self.counting = False
        self.enabled_stanza = None
        self.session_started = asyncio.Event()
        self.sm_ready = asyncio.Event()
        self.resumed = asyncio.Event()
        self.sm_failed = None
        self.auth_failed = None
        self.lost = asyncio.Event()

        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("session_resumed", self._on_resumed)
        self.add_event_handler("sm_enabled", self._on_sm_enabled)
        self.add_event_handler("sm_failed", self._on_sm_failed)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("disconnected", lambda e: self.lost.set())
        self.register_handler(Callback(
            f"{label} all messages", MatchXPath(q(NS_CLIENT, "message")), self._on_message))
        self.register_handler(Callback(
            f"{label} roster push spy", StanzaPath("iq@type=set/roster"),
            lambda iq: self.roster_pushes.append(iq.xml)))
        self.register_handler(Callback(
            f"{label} sm r spy", MatchXPath(sm_stanza.RequestAck.tag_name()), self._on_r))
        self.resumed_stanza = None
        self.register_handler(Callback(
            f"{label} sm resumed spy", MatchXPath(sm_stanza.Resumed.tag_name()),
            lambda st: setattr(self, "resumed_stanza", st.xml)))
        self.register_handler(Callback(
            f"{label} sm a spy", MatchXPath(sm_stanza.Ack.tag_name()),
            lambda a: self.acks_in.append(int(a.xml.get("h", "-1")))))
        # an independent count of handled stanzas (XEP-0198 §4: message, presence, iq)
        self.add_filter("in", self._count_in)
        # record what slixmpp answers to the server's <r/>
        sm = self["xep_0198"]
        orig_send_ack = sm.send_ack

        def send_ack_spy():
            self.acks_out.append((sm.handled, self.counted))
            orig_send_ack()

        sm.send_ack = send_ack_spy

    # --- event handlers
    def _on_session_start(self, _):
        self.session_started.set()
        self.send_presence()

    def _on_resumed(self, _):
        self.resumed.set()

    def _on_sm_enabled(self, stanza):
        self.enabled_stanza = stanza.xml
        self.counted = 0
        self.counting = True
        self.sm_ready.set()

    def _on_sm_failed(self, stanza):
        self.sm_failed = stanza.xml
        self.sm_ready.set()

    def _on_failed_auth(self, _):
        self.auth_failed = True
        self.session_started.set()

    def _on_r(self, _):
        self.server_r += 1

    def _on_message(self, msg):
        self.messages.append((time.monotonic(), msg.xml))

    def _count_in(self, stanza):
        if self.counting and isinstance(stanza, (Message, Presence, Iq)):
            self.counted = (self.counted + 1) % (2 ** 32)
        return stanza

    # --- helpers
    def start(self):
        self.connect(address=self.address_)  # STARTTLS is required by default (force_starttls)

    def bodies(self, predicate=None):
        return [(t, x) for t, x in self.messages
                if body_of(x) is not None and (predicate is None or predicate(x))]

    async def request_ack_and_check(self):
        """Send <r/> and check the server's <a h/> equals what we sent."""
        sm = self["xep_0198"]
        await wait_for(lambda: self.waiting_queue.empty(), 3, "the send queue to drain")
        await asyncio.sleep(0.05)
        before = len(self.acks_in)
        expected = sm.seq
        sm.request_ack()
        await wait_for(lambda: len(self.acks_in) > before, 5, f"<a/> from the server ({self.label})")
        h = self.acks_in[before]
        assert h == expected, f"{self.label}: server answered <r/> with h={h}, but {expected} stanzas were sent since <enable/>"
        return h


class Checks:
    def __init__(self):
        self.failed = []
        self.results = []

    async def run(self, name, fn, timeout=CHECK_TIMEOUT, needs=()):
        for dep in needs:
            if dep in self.failed:
                self.fail(name, f"not run: {dep} failed")
                return False
        try:
            res = await asyncio.wait_for(fn(), timeout)
        except asyncio.TimeoutError:
            self.fail(name, f"timed out after {timeout:g}s")
            return False
        except Skip as e:
            print(f"skip {name}: {e}", flush=True)
            return True
        except IqError as e:
            err = e.iq["error"]
            self.fail(name, f"unexpected iq error {err['type']}/{err['condition']} {err['text']!r}")
            return False
        except IqTimeout:
            self.fail(name, "iq timed out")
            return False
        except AssertionError as e:
            self.fail(name, str(e))
            return False
        except Exception as e:  # a bug in this script or in slixmpp
            self.fail(name, f"{type(e).__name__}: {e}")
            return False
        print(f"ok {name}" + (f" ({res})" if isinstance(res, str) and res else ""), flush=True)
        return True

    def fail(self, name, reason):
        self.failed.append(name)
        print(f"FAIL {name}: {reason}", flush=True)


class Skip(Exception):
    pass


def info(text):
    print(f"# {text}", flush=True)


async def main(args):
    address = (args.host, args.port)
    domain = args.domain
    a_user, a_pass = args.alice.split(":", 1)
    b_user, b_pass = args.bob.split(":", 1)
    alice_bare = f"{a_user}@{domain}"
    bob_bare = f"{b_user}@{domain}"
    alice1 = Client("alice/one", f"{alice_bare}/one", a_pass, address)
    alice2 = Client("alice/two", f"{alice_bare}/two", a_pass, address)
    bob = Client("bob/desk", f"{bob_bare}/desk", b_pass, address)
    clients = [alice1, alice2, bob]
    checks = Checks()
    state = {}

    # ------------------------------------------------------------------ login
    async def login():
        for c in clients:
            c.start()
        for c in clients:
            await asyncio.wait_for(c.session_started.wait(), 8)
            assert not c.auth_failed, f"{c.label}: authentication failed"
        notes = []
        for c in clients:
            want = c.requested_jid.full
            assert c.boundjid.full == want, f"{c.label}: bound {c.boundjid.full}, asked for {want}"
            mech = c["feature_mechanisms"].mech.name if c["feature_mechanisms"].mech else None
            assert mech and mech.startswith("SCRAM-SHA-"), f"{c.label}: SASL mechanism {mech}, expected SCRAM-SHA-1/256"
            tls = "starttls" in c.features
            assert tls, f"{c.label}: STARTTLS was not negotiated"
            cipher = c.transport.get_extra_info("cipher") if c.transport else None
            notes.append(f"{c.label} {mech} {'STARTTLS ' + (cipher[1] if cipher else '') if tls else 'plain'}")
        info("login: " + "; ".join(notes))
        info(f"login: SASL mechanisms offered after STARTTLS: {sorted(alice1['feature_mechanisms'].mech_list)}")
        return ""

    async def login_scram_sha_1():
        c = Client("alice/sha1", f"{alice_bare}/sha1", a_pass, address)
        c["feature_mechanisms"].use_mech = "SCRAM-SHA-1"
        try:
            c.start()
            await asyncio.wait_for(c.session_started.wait(), 8)
            assert not c.auth_failed, "authentication with SCRAM-SHA-1 failed"
            mech = c["feature_mechanisms"].mech.name
            assert mech == "SCRAM-SHA-1", f"used {mech}"
            assert c.boundjid.full == f"{alice_bare}/sha1", f"bound {c.boundjid.full}"
            await c["xep_0199"].ping(jid=domain, timeout=5)
        finally:
            if c.transport:
                c.disconnect(wait=1)
                await asyncio.wait_for(c.lost.wait(), 3)
        return ""

    # ---------------------------------------------------------- XEP-0198 acks
    async def stream_management():
        for c in clients:
            await asyncio.wait_for(c.sm_ready.wait(), 5)
            assert c.sm_failed is None, f"{c.label}: <enable/> answered with <failed/>: {ET_str(c.sm_failed)}"
            en = c.enabled_stanza
            assert en is not None, f"{c.label}: no <enabled/>"
            assert en.get("resume") in ("true", "1"), f"{c.label}: <enabled/> without resume='true': {ET_str(en)}"
            assert en.get("id"), f"{c.label}: <enabled/> without id"
        info(f"sm: <enabled id='…' resume='{alice1.enabled_stanza.get('resume')}' max='{alice1.enabled_stanza.get('max')}'/>")
        # client's <r/>: a few iqs, then <r/>; the server's h must count them
        for c in clients:
            for _ in range(3):
                await c["xep_0199"].ping(jid=domain, timeout=5)
            await c.request_ack_and_check()
        # server's <r/>: the server asks after its stanzas (the ping results above)
        for c in clients:
            await wait_for(lambda: c.server_r > 0 and c.acks_out, 5, f"an <r/> from the server to {c.label}")
            for sent_h, own in c.acks_out:
                assert sent_h == own, f"{c.label}: slixmpp answered h={sent_h}, our own count is {own}"
            # the server accepted our <a/>: the stream still works and acks are still right
            await c["xep_0199"].ping(jid=domain, timeout=5)
            await c.request_ack_and_check()
        return f"server <r/> seen: {', '.join(f'{c.label}={c.server_r}' for c in clients)}"

    # ------------------------------------------------------------ chat + sid
    bob_received = []  # (body, stanza-id by bob) in delivery order
    bob_sent = []  # bodies bob sent to alice

    def record_bob_received():
        # every body message bob got directly (not MAM results, not carbons)
        bob_received.clear()
        for _, x in bob.bodies():
            sid = stanza_id_of(x, bob_bare)
            bob_received.append((body_of(x), sid.get("id") if sid is not None else None, x))

    async def chat():
        body = f"hello bob {RUN_ID}"
        alice1.send_message(mto=bob_bare, mbody=body, mtype="chat")
        _, x = (await wait_for(lambda: bob.bodies(lambda x: body_of(x) == body), 5, "the message at bob"))[0]
        assert x.get("type") == "chat", f"type={x.get('type')}"
        assert JID(x.get("from")) == alice1.boundjid, f"from={x.get('from')}, expected {alice1.boundjid}"
        sid = stanza_id_of(x)
        assert sid is not None, f"no <stanza-id xmlns='{NS_SID}'/> in the delivered message: {ET_str(x)}"
        assert sid.get("by") == bob_bare, f"stanza-id by={sid.get('by')!r}, expected {bob_bare!r}"
        assert sid.get("id"), "stanza-id without id"
        await asyncio.sleep(0.3)
        n = len(bob.bodies(lambda x: body_of(x) == body))
        assert n == 1, f"bob got the message {n} times"
        return f"stanza-id {sid.get('id')}"

    # --------------------------------------------------------------- carbons
    async def carbons():
        for c in (alice1, alice2):
            await c["xep_0280"].enable(timeout=5)
        # 1. alice/one -> bob: alice/two gets <sent/>, alice/one does not
        body = f"carbon sent test {RUN_ID}"
        alice1.send_message(mto=bob_bare, mbody=body, mtype="chat")
        await wait_for(lambda: bob.bodies(lambda x: body_of(x) == body), 5, "the message at bob")

        def sent_copies(c):
            out = []
            for _, x in c.messages:
                w, inner = carbon_of(x, "sent")
                if inner is not None and body_of(inner) == body:
                    out.append((x, inner))
            return out

        got = await wait_for(lambda: sent_copies(alice2), 5, "a <sent/> carbon at alice/two")
        x, inner = got[0]
        assert JID(x.get("from")) == JID(alice_bare), f"carbon from={x.get('from')}, XEP-0280 requires the user's bare JID"
        assert JID(inner.get("to")).bare == bob_bare, f"forwarded to={inner.get('to')}"
        assert JID(inner.get("from")) == alice1.boundjid, f"forwarded from={inner.get('from')}"
        await asyncio.sleep(0.3)
        assert len(sent_copies(alice2)) == 1, f"alice/two got {len(sent_copies(alice2))} <sent/> copies"
        assert not sent_copies(alice1), "alice/one (the sender) got a <sent/> copy of its own message"
        assert not alice2.bodies(lambda x: body_of(x) == body), "alice/two got the message itself, not a carbon"
        sid = stanza_id_of(inner)
        info(f"carbons: <sent/> forwarded message stanza-id: {ET_str(sid) if sid is not None else 'none'}")

        # 2. bob -> alice (bare): each alice resource gets it exactly once
        body2 = f"carbon received test {RUN_ID}"
        bob.send_message(mto=alice_bare, mbody=body2, mtype="chat")
        bob_sent.append(body2)

        def copies(c):
            direct = len(c.bodies(lambda x: body_of(x) == body2))
            rec = 0
            for _, x in c.messages:
                w, inner = carbon_of(x, "received")
                if inner is not None and body_of(inner) == body2:
                    assert JID(x.get("from")) == JID(alice_bare), f"<received/> carbon from={x.get('from')}"
                    rec += 1
            return direct, rec

        await wait_for(lambda: all(sum(copies(c)) >= 1 for c in (alice1, alice2)), 5,
                       "bob's message (directly or as <received/> carbon) at both alice resources")
        await asyncio.sleep(0.3)
        how = []
        for c in (alice1, alice2):
            d, r = copies(c)
            assert d + r == 1, f"{c.label} got bob's message to the bare JID {d} times directly and {r} times as <received/> carbon"
            how.append(f"{c.label}: {'direct' if d else '<received/> carbon'}")

        # 3. bob -> alice/one (full JID): alice/one gets it, alice/two a <received/> carbon
        body2 = f"carbon full jid test {RUN_ID}"
        bob.send_message(mto=alice1.boundjid.full, mbody=body2, mtype="chat")
        bob_sent.append(body2)
        await wait_for(lambda: copies(alice1)[0] >= 1 and copies(alice2)[1] >= 1, 5,
                       "bob's message at alice/one and a <received/> carbon at alice/two")
        await asyncio.sleep(0.3)
        assert copies(alice1) == (1, 0), f"alice/one got bob's message to its full JID (direct, carbon) = {copies(alice1)}, expected (1, 0)"
        assert copies(alice2) == (0, 1), f"alice/two got bob's message to alice/one (direct, carbon) = {copies(alice2)}, expected (0, 1)"
        how.append("to alice/one: <received/> carbon at alice/two")
        return "; ".join(how)

    # ------------------------------------------------------------------- MAM
    N_MAM = 25

    async def mam_send():
        bodies = [f"mam {i:02d} {RUN_ID}" for i in range(N_MAM)]
        for b in bodies:
            alice1.send_message(mto=bob_bare, mbody=b, mtype="chat")
        await wait_for(lambda: len(bob.bodies(lambda x: body_of(x) in bodies)) >= N_MAM, 8,
                       f"{N_MAM} messages at bob")
        # a note to self, so that a `with` filter has something to leave out
        note = f"note to self {RUN_ID}"
        bob.send_message(mto=bob_bare, mbody=note, mtype="chat")
        state["note"] = note
        state["mam_bodies"] = bodies
        await asyncio.sleep(0.5)
        got = [body_of(x) for _, x in bob.bodies(lambda x: body_of(x) in bodies)]
        assert got == bodies, "bob got the messages out of order or more than once"
        return ""

    def parse_results(iq, results):
        out = []
        for m in results:
            r = m.xml.find(q(NS_MAM, "result"))
            fwd = r.find(q(NS_FORWARD, "forwarded")) if r is not None else None
            inner = fwd.find(q(NS_CLIENT, "message")) if fwd is not None else None
            delay = fwd.find(q(NS_DELAY, "delay")) if fwd is not None else None
            out.append({"id": r.get("id") if r is not None else None, "queryid": r.get("queryid") if r is not None else None,
                        "inner": inner, "delay": delay, "outer": m.xml})
        fin = iq.xml.find(q(NS_MAM, "fin"))
        return out, fin

    def rsm_of(fin):
        s = fin.find(q(NS_RSM, "set")) if fin is not None else None
        get = (lambda n: (s.find(q(NS_RSM, n)).text if s is not None and s.find(q(NS_RSM, n)) is not None else None))
        first_el = s.find(q(NS_RSM, "first")) if s is not None else None
        return {"first": get("first"), "last": get("last"), "count": get("count"),
                "index": first_el.get("index") if first_el is not None else None}

    async def page_all(c, with_jid=None, page=10):
        """Page through the archive (RSM max=page, after=last) with slixmpp's retrieve()."""
        items, pages = [], []
        after = None
        for _ in range(100):
            rsm = {"max": page}
            if after:
                rsm["after"] = after
            iq = await c["xep_0313"].retrieve(with_jid=JID(with_jid) if with_jid else None, rsm=rsm, timeout=5)
            res, fin = parse_results(iq, iq["mam"]["results"])
            assert fin is not None, f"no <fin xmlns='{NS_MAM}'/> in the result: {ET_str(iq.xml)}"
            rs = rsm_of(fin)
            complete = fin.get("complete") in ("true", "1")
            pages.append((len(res), complete, rs))
            assert len(res) <= page, f"a page of {len(res)} results with max={page}"
            if res:
                assert rs["first"] == res[0]["id"] and rs["last"] == res[-1]["id"], \
                    f"RSM first/last {rs['first']}/{rs['last']} != first/last result ids {res[0]['id']}/{res[-1]['id']}"
            for r in res:  # slixmpp's retrieve() uses the iq id as queryid
                assert r["queryid"] == iq["id"], f"result queryid {r['queryid']!r} != the query's {iq['id']!r}"
            items.extend(res)
            if complete or not res:
                break
            after = rs["last"]
        return items, pages

    async def mam_paging():
        record_bob_received()
        bodies = state["mam_bodies"]
        items, pages = await page_all(bob, page=10)
        shown = pages if len(pages) <= 4 else pages[:2] + pages[-2:]
        info(f"mam: {len(pages)} pages (results, complete, rsm){', first and last two' if len(pages) > 4 else ''}: " + " | ".join(
            f"{n}, {c}, first={r['first']} index={r['index']} last={r['last']} count={r['count']}" for n, c, r in shown))
        assert pages[-1][1], "the last page is not <fin complete='true'>"
        for n, c, _ in pages[:-1]:
            assert not c, "a page before the last one says complete='true'"
            assert n == 10, f"a page before the last one has {n} results, not 10"
        for r in items:
            assert r["inner"] is not None, f"a result without <forwarded><message/>: {ET_str(r['outer'])}"
            assert r["delay"] is not None and r["delay"].get("stamp"), f"result {r['id']} has no <delay stamp/>"
            assert JID(r["outer"].get("from") or bob_bare) == JID(bob_bare), \
                f"result message from={r['outer'].get('from')} (must be the archive's JID or absent)"
        ids = [r["id"] for r in items]
        assert len(set(ids)) == len(ids), "duplicate archive ids across pages"
        total = len(items)
        counts = {r["count"] for _, _, r in pages if r["count"] is not None}
        assert counts <= {str(total)}, f"RSM count {counts} != {total} results paged through"
        stamps = [datetime.fromisoformat(r["delay"].get("stamp").replace("Z", "+00:00")) for r in items]
        assert stamps == sorted(stamps), "delay stamps are not in ascending order (oldest first)"
        # what must be there from this run (bodies carry the run id; the archive may hold
        # earlier runs): every body message delivered to bob (ids = the stanza-ids seen on
        # delivery, in order), what bob sent to alice, the note to self once
        run = [r for r in items if RUN_ID in (body_of(r["inner"]) or "")]
        from_alice = [r for r in run if JID(r["inner"].get("from")).bare == alice_bare]
        got = [(body_of(r["inner"]), r["id"]) for r in from_alice]
        want = [(b, sid) for b, sid, _ in bob_received if b != state["note"]]
        assert got == want, f"archived messages from alice (body, id) {got} != delivered (body, stanza-id) {want}"
        mam_got = [r for r in from_alice if body_of(r["inner"]) in bodies]
        assert [body_of(r["inner"]) for r in mam_got] == bodies, "the 25 messages are not in order, oldest first"
        to_alice = [body_of(r["inner"]) for r in run
                    if JID(r["inner"].get("to") or "").bare == alice_bare and JID(r["inner"].get("from") or bob_bare).bare == bob_bare]
        assert to_alice == bob_sent, f"bob's outgoing messages in the archive {to_alice} != sent {bob_sent}"
        notes = [r for r in run if body_of(r["inner"]) == state["note"]]
        assert len(notes) == 1, f"the note to self is archived {len(notes)} times"
        expected = len(want) + len(bob_sent) + 1
        assert len(run) == expected, f"{len(run)} results from this run, expected {expected}"
        state["archive"] = items
        return (f"{total} results in {len(pages)} pages ({len(run)} from this run), "
                f"{N_MAM} test messages in order with their stanza-ids")

    async def mam_with():
        items, pages = await page_all(bob, with_jid=alice_bare, page=50)
        want = [r["id"] for r in state["archive"]
                if alice_bare in (JID(r["inner"].get("from") or "").bare, JID(r["inner"].get("to") or "").bare)]
        got = [r["id"] for r in items]
        assert got == want, f"with={alice_bare}: ids {got} != {want}"
        assert pages[-1][1], "with query: not complete"
        assert all(body_of(r["inner"]) != state["note"] for r in items), "the note to self matched with=alice"
        return f"{len(items)} results"

    async def mam_unknown_field():
        iq = bob.make_iq_set()
        iq["mam"]["queryid"] = "unknown-field"
        iq["mam"].set_custom_field("frobnicate-" + RUN_ID, "yes")
        try:
            res = await iq.send(timeout=5)
        except IqError as e:
            err = e.iq["error"]
            assert err["condition"] == "feature-not-implemented" and err["type"] == "cancel", \
                f"error {err['type']}/{err['condition']}, expected cancel/feature-not-implemented"
            return f"text: {err['text']!r}"
        raise AssertionError(f"the query succeeded: {ET_str(res.xml)}")

    async def mam_forbidden():
        before = len(bob.messages)
        try:
            res = await bob["xep_0313"].retrieve(jid=JID(alice_bare), rsm={"max": 5}, timeout=5)
        except IqError as e:
            err = e.iq["error"]
            assert err["condition"] == "forbidden", f"error {err['type']}/{err['condition']}, expected forbidden"
            await asyncio.sleep(0.2)
            leaked = [x for _, x in bob.messages[before:] if x.find(q(NS_MAM, "result")) is not None]
            assert not leaked, f"{len(leaked)} result messages were sent before the error"
            return f"{err['type']}/{err['condition']}"
        raise AssertionError(f"bob could query alice's archive: {len(res['mam']['results'])} results")

    # ------------------------------------------------------- disco and ping
    async def disco():
        srv = await bob["xep_0030"].get_info(jid=domain, local=False, cached=False, timeout=5)
        acc = await bob["xep_0030"].get_info(jid=bob_bare, local=False, cached=False, timeout=5)
        sf = sorted(srv["disco_info"]["features"])
        af = sorted(acc["disco_info"]["features"])
        info(f"disco#info {domain}: identities {sorted(tuple(i[:3]) for i in srv['disco_info']['identities'])}")
        info(f"disco#info {domain}: features {sf}")
        info(f"disco#info {bob_bare}: identities {sorted(tuple(i[:3]) for i in acc['disco_info']['identities'])}")
        info(f"disco#info {bob_bare}: features {af}")
        assert NS_MAM in af, f"the account does not advertise {NS_MAM}"
        assert NS_CARBONS in sf, f"the server does not advertise {NS_CARBONS} (XEP-0280 §4)"
        # XEP-0313 §5.1: a server "MUST advertise support only for those JIDs that support it";
        # the domain has no archive (a query to it is refused), so it must not advertise one
        assert NS_MAM not in sf, f"the server advertises {NS_MAM} but has no archive of its own"
        return "account advertises mam:2, the server does not"

    async def ping():
        rtt = await bob["xep_0199"].ping(jid=domain, timeout=5)
        return f"rtt {rtt * 1000:.1f} ms"

    # ----------------------------------------------------------------- roster
    async def roster():
        # pushes go to resources that requested the roster (RFC 6121 §2.1.6)
        await bob.get_roster(timeout=5)
        pushes_before = len(bob.roster_pushes)
        group = f"Friends {RUN_ID}"
        await bob.update_roster(JID(alice_bare), name="Alice", groups=[group], timeout=5)

        def pushed():
            for x in bob.roster_pushes[pushes_before:]:
                for item in x.iter(q("jabber:iq:roster", "item")):
                    if item.get("jid") == alice_bare:
                        return x
            return None

        push = await wait_for(pushed, 5, "a roster push for alice")
        assert push.get("from") in (None, "", bob_bare), f"roster push from={push.get('from')}"
        # a plain roster get (no version), so the whole roster comes back
        iq = bob.make_iq_get(queryxmlns="jabber:iq:roster")
        res = await iq.send(timeout=5)
        items = {x.get("jid"): x for x in res.xml.iter(q("jabber:iq:roster", "item"))}
        assert alice_bare in items, f"roster get does not contain {alice_bare}: {ET_str(res.xml)}"
        it = items[alice_bare]
        groups = [g.text for g in it.findall(q("jabber:iq:roster", "group"))]
        assert it.get("name") == "Alice" and groups == [group], f"item {ET_str(it)}"
        assert it.get("subscription") in (None, "none"), f"subscription={it.get('subscription')}"
        return ""

    # ------------------------------------------------------------ resumption
    async def resume():
        sm = alice1["xep_0198"]
        if not sm.sm_id:
            raise AssertionError("alice/one has no resumable session (no id in <enabled/>)")
        if not alice1.transport:
            raise AssertionError("alice/one is not connected")
        # abortive close: SO_LINGER 0 + abort() sends a TCP RST, no </stream:stream>, no close_notify
        sock = alice1.transport.get_extra_info("socket")
        if sock is None:
            raise Skip("slixmpp's transport does not expose its socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        alice1.lost.clear()
        alice1.resumed.clear()
        alice1.session_started.clear()
        n_before = len(alice1.messages)
        await wait_for(lambda: alice1.waiting_queue.empty(), 3, "alice/one's send queue to drain")
        await asyncio.sleep(0.2)
        seq_at_kill = sm.seq
        alice1.transport.abort()
        await asyncio.wait_for(alice1.lost.wait(), 3)
        assert sm.sm_id, "slixmpp forgot the SM id on disconnect"
        await asyncio.sleep(0.3)
        body = f"while you were away {RUN_ID}"
        bob.send_message(mto=alice1.boundjid.full, mbody=body, mtype="chat")
        await asyncio.sleep(0.3)
        alice1.start()  # slixmpp sends <resume previd h/> before binding when it has an SM id
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(alice1.resumed.wait()), asyncio.ensure_future(alice1.session_started.wait())],
            timeout=8, return_when=asyncio.FIRST_COMPLETED)
        if alice1.session_started.is_set() and not alice1.resumed.is_set():
            raise AssertionError(f"not resumed, a new session was bound (sm failed: {ET_str(alice1.sm_failed)})")
        assert alice1.resumed.is_set(), "no <resumed/> within 8 s"
        rh = int(alice1.resumed_stanza.get("h", "-1"))
        assert rh == seq_at_kill, f"<resumed h='{rh}'/>, but alice/one had sent {seq_at_kill} stanzas since <enable/>"
        info(f"resume: <resume h='…'/> answered by <resumed h='{rh}'/> = stanzas alice/one sent; slixmpp 1.8.3 "
             "logs 'Inconsistent sequence numbers' here because it empties its unacked queue when it "
             "sends <resume/> (its own bookkeeping, not the server's h)")
        await asyncio.sleep(1.0)
        new = [x for _, x in alice1.messages[n_before:] if body_of(x) == body]
        assert len(new) == 1, f"the message sent while away arrived {len(new)} times after resumption"
        all_bodies = [body_of(x) for _, x in alice1.bodies()]
        dups = {b for b in all_bodies if all_bodies.count(b) > 1}
        assert not dups, f"alice/one got these messages more than once: {sorted(dups)}"
        await alice1.request_ack_and_check()
        await alice1["xep_0199"].ping(jid=domain, timeout=5)
        return "message delivered once after <resumed/>"

    # ------------------------------------------------------------------ run
    await checks.run("login", login)
    await checks.run("login-scram-sha-1", login_scram_sha_1, needs=("login",))
    await checks.run("stream-management", stream_management, needs=("login",))
    await checks.run("chat", chat, needs=("login",))
    await checks.run("carbons", carbons, needs=("login",))
    await checks.run("mam-send", mam_send, needs=("login",))
    await checks.run("mam-paging", mam_paging, needs=("mam-send",))
    await checks.run("mam-with", mam_with, needs=("mam-paging",))
    await checks.run("mam-unknown-field", mam_unknown_field, needs=("login",))
    await checks.run("mam-forbidden", mam_forbidden, needs=("login",))
    await checks.run("disco", disco, needs=("login",))
    await checks.run("ping", ping, needs=("login",))
    await checks.run("roster", roster, needs=("login",))
    await checks.run("resume", resume, timeout=15, needs=("login", "stream-management"))

    for c in clients:
        if c.transport:
            c.disconnect(wait=1)
    await asyncio.sleep(0.2)
    await asyncio.wait([asyncio.ensure_future(c.lost.wait()) for c in clients if c.transport] or
                       [asyncio.ensure_future(asyncio.sleep(0))], timeout=2)
    return 1 if checks.failed else 0


def ET_str(x):
    if x is None:
        return "None"
    from slixmpp.xmlstream import tostring
    return tostring(x)


def cli():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--alice", default="alice:alice-password", help="user:password")
    p.add_argument("--bob", default="bob:bob-password", help="user:password")
    p.add_argument("--deadline", type=float, default=55.0, help="seconds for the whole run")
    p.add_argument("--debug", action="store_true", help="log the XML exchanged to stderr")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    info(f"slixmpp {slixmpp.__version__}, Python {sys.version.split()[0]}, run {RUN_ID}")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    started = time.monotonic()
    try:
        rc = loop.run_until_complete(asyncio.wait_for(main(args), args.deadline))
    except asyncio.TimeoutError:
        print(f"FAIL deadline: the run did not finish within {args.deadline:g}s", flush=True)
        rc = 1
    info(f"took {time.monotonic() - started:.1f}s")
    sys.stdout.flush()
    os._exit(rc)  # do not wait for slixmpp's leftover tasks


if __name__ == "__main__":
    cli()
