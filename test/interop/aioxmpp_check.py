#!/usr/bin/env python3
"""Interop check of a running mamkit server with aioxmpp (Python), a second
client library nobody on the project wrote.

Usage:
  /usr/bin/python3 test/interop/aioxmpp_check.py --host 127.0.0.1 --port N \
      --domain localhost [--alice alice:alice-password] [--bob bob:bob-password] [--debug]

Checks STARTTLS with SCRAM, stream management with a real resumption after a
broken connection, roster get/set with pushes, chat, disco, ping and a MAM
query (aioxmpp has no MAM service: the XEP-0313 elements are declared here).
Prints `ok <name>` or `FAIL <name>: <reason>` per check; exits 1 if any
failed. Every wait is bounded; the whole run by --deadline seconds.
"""

import argparse
import asyncio
import logging
import socket
import sys
import uuid
from datetime import timedelta

try:
    import aioxmpp
    import aioxmpp.connector
    import aioxmpp.disco
    import aioxmpp.misc  # noqa: F401 (XEP-0359 stanza-ids on messages)
    import aioxmpp.ping
    import aioxmpp.roster
    import aioxmpp.rsm.xso
    import aioxmpp.xso as xso
    from aioxmpp.misc import Forwarded
except ImportError as e:  # pragma: no cover
    print(f"FAIL import: aioxmpp is not importable by {sys.executable}: {e}")
    sys.exit(2)

NS_MAM = "urn:xmpp:mam:2"


# ---- the XEP-0313 elements aioxmpp does not know -------------------------
@aioxmpp.IQ.as_payload_class
class MamQuery(xso.XSO):
    TAG = (NS_MAM, "query")
    queryid = xso.Attr("queryid", default=None)
    rsm = xso.Child([aioxmpp.rsm.xso.ResultSetMetadata])


@aioxmpp.IQ.as_payload_class
class MamFin(xso.XSO):
    TAG = (NS_MAM, "fin")
    complete = xso.Attr("complete", default=None)
    rsm = xso.Child([aioxmpp.rsm.xso.ResultSetMetadata])


class MamResult(xso.XSO):
    TAG = (NS_MAM, "result")
    queryid = xso.Attr("queryid", default=None)
    id_ = xso.Attr("id")
    forwarded = xso.Child([Forwarded])


aioxmpp.Message.xep0313_result = xso.Child([MamResult])  # (stanza-ids: aioxmpp.misc knows them)

results = []


def report(name, ok, detail=""):
    results.append(ok)
    print(f"ok {name}" if ok else f"FAIL {name}: {detail}", flush=True)


def make_client(args, who):
    user, password = getattr(args, who).split(":", 1)
    jid = aioxmpp.JID.fromstr(f"{user}@{args.domain}/aioxmpp-{uuid.uuid4().hex[:6]}")
    security = aioxmpp.make_security_layer(password, no_verify=True)
    peer = [(args.host, args.port, aioxmpp.connector.STARTTLSConnector())]
    client = aioxmpp.PresenceManagedClient(jid, security, override_peer=peer)
    client.presence = aioxmpp.PresenceState(True)
    client.backoff_start = timedelta(seconds=0.2)
    client.summon(aioxmpp.RosterClient)  # before connecting: it fetches the roster at login, and so gets pushes
    return client


def inbox(client):
    """Chat bodies as they arrive (a MAM result or a carbon has no body of its own)."""
    got = []

    def on_message(msg):
        if msg.body:
            got.append((str(msg.body.any()), [(s.by, s.id_) for s in msg.xep0359_stanza_ids]))

    client.stream.register_message_callback(aioxmpp.MessageType.CHAT, None, on_message)
    return got


async def until(pred, seconds=8.0):
    for _ in range(int(seconds / 0.05)):
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


async def check_roster(alice, bob_jid):
    roster = alice.summon(aioxmpp.RosterClient)
    name = f"Bob {uuid.uuid4().hex[:6]}"  # new each run: only the server's push can bring it
    await roster.set_entry(bob_jid, name=name, add_to_groups={"Friends"})
    pushed = await until(lambda: bob_jid in roster.items and roster.items[bob_jid].name == name)
    item = roster.items.get(bob_jid)
    report("roster", pushed and "Friends" in item.groups, f"roster holds {dict(roster.items)}")


async def check_mam(alice, expected_bodies):
    bodies = []
    queryid = "q-" + uuid.uuid4().hex[:6]

    def on_result(msg):
        r = msg.xep0313_result
        if r is not None and r.queryid == queryid and r.forwarded and r.forwarded.stanza.body:
            bodies.append(str(r.forwarded.stanza.body.any()))

    alice.stream.register_message_callback(aioxmpp.MessageType.NORMAL, None, on_result)
    query = MamQuery()
    query.queryid = queryid
    iq = aioxmpp.IQ(type_=aioxmpp.IQType.SET, payload=query)
    fin = await asyncio.wait_for(alice.send(iq), 8)
    alice.stream.unregister_message_callback(aioxmpp.MessageType.NORMAL, None)
    missing = [b for b in expected_bodies if b not in bodies]
    report("mam", isinstance(fin, MamFin) and not missing, f"fin {fin!r}, results {bodies}, missing {missing}")


async def main(args):
    alice, bob = make_client(args, "alice"), make_client(args, "bob")
    bob_bare = bob.local_jid.bare()
    async with alice.connected() as alice_stream, bob.connected():
        report("login", alice.established and bob.established)
        report("stream-management", alice_stream.sm_enabled and bob.stream.sm_enabled and bob.stream.sm_resumable,
               f"alice sm {alice_stream.sm_enabled}, bob resumable {bob.stream.sm_resumable}")
        bob_got = inbox(bob)

        await aioxmpp.ping.ping(alice, aioxmpp.JID.fromstr(args.domain))
        report("ping", True)
        info = await alice.summon(aioxmpp.DiscoClient).query_info(alice.local_jid.bare())
        report("disco", NS_MAM in info.features, f"account features {sorted(info.features)}")
        await check_roster(alice, bob_bare)

        msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=bob_bare)
        msg.body[None] = "hello from aioxmpp"
        await alice.send(msg)
        ok = await until(lambda: any(b == "hello from aioxmpp" for b, _ in bob_got))
        ids = [s for b, s in bob_got if b == "hello from aioxmpp"]
        report("chat", ok and ids and any(by == bob_bare for by, _ in ids[0]), f"bob got {bob_got}")

        # a broken connection: bob's stream is suspended, resumed, and nothing is lost or doubled
        resumed = asyncio.Event()
        bob.on_stream_resumed.connect(lambda: resumed.set())
        # the network goes away under bob's client (aioxmpp's own abort() leaves it writing to a closed transport)
        bob.stream._xmlstream._transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=bob_bare)
        msg.body[None] = "while bob was away"
        await alice.send(msg)
        try:
            await asyncio.wait_for(resumed.wait(), 15)
            await until(lambda: any(b == "while bob was away" for b, _ in bob_got))
            n = sum(1 for b, _ in bob_got if b == "while bob was away")
            report("resume", n == 1, f"received {n} times")
        except asyncio.TimeoutError:
            report("resume", False, "no resumption within 15 s")

        await check_mam(alice, ["hello from aioxmpp", "while bob was away"])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--alice", default="alice:alice-password", help="user:password")
    p.add_argument("--bob", default="bob:bob-password", help="user:password")
    p.add_argument("--deadline", type=float, default=55.0, help="seconds for the whole run")
    p.add_argument("--debug", action="store_true", help="log aioxmpp's XML to stderr")
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.CRITICAL, stream=sys.stderr)
    try:
        asyncio.run(asyncio.wait_for(main(a), a.deadline))
    except Exception as e:  # a check that could not finish is a failure, never a pass
        report("run", False, f"{type(e).__name__}: {e}")
    sys.exit(0 if results and all(results) else 1)
