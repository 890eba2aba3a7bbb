// Coordination of the nodes sharing one PostgreSQL database.
//
// - Exclusive tasks: a session-level advisory lock, held for as long as the
//   task runs on the node's listening connection (which stays open: a task
//   takes no connection of the pool from the node's readers). A node that
//   dies loses its connection, and PostgreSQL lets go of the lock.
// - Who is alive: every connection of a node is named `mamkit-node:<id>`
//   (the listener, the writer's, the pool's); a node is alive while
//   pg_stat_activity shows any of them. One whose listener alone dropped is
//   still alive, and a barrier then waits for an answer it cannot give, and
//   fails: better no cleanup than one that forgot a node.
// - Barriers: a NOTIFY asks every node to run its handlers of a topic; each
//   answers with a NOTIFY once they finished. The barrier holds once every
//   node alive after the request went out has answered (a node that dies
//   meanwhile drops out; one that started meanwhile, and so never heard the
//   request, makes it time out: a barrier then fails rather than guesses).
import { randomUUID } from "node:crypto";
import pg from "pg";
import { addHandler, runHandlers } from "../coordination.js";
import { type Coordination, StorageError } from "../types.js";
import { checkout, connectionProblem, isConnectionError, type PgTarget } from "./connection.js";
import { LOCK_LEADER, lockKey } from "./schema.js";

const ASK = "mamkit_barrier";
const ANSWER = "mamkit_barrier_done";
export const NODE_PREFIX = "mamkit-node:";
const PREFIX = NODE_PREFIX;

export class PgCoordination implements Coordination {
  readonly shared = true;
  private listener: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly handlers = new Map<string, Set<() => Promise<void>>>();
  /** Barriers this node asked for: who answered, and what to call on each answer. */
  private readonly asked = new Map<string, { answered: Set<string>; poke: () => void }>();
  private closed = false;

  constructor(
    readonly nodeId: string,
    private readonly target: PgTarget,
    private readonly pool: pg.Pool,
    private readonly warn: (message: string, err?: unknown) => void,
  ) {
    void this.listen();
  }

  /** Connects the listening connection (again, after it was lost). */
  private listen(): Promise<void> {
    this.connecting ??= (async () => {
      const c = new pg.Client({ connectionString: this.target.url, application_name: `${PREFIX}${this.nodeId}` });
      c.on("error", () => undefined);
      c.on("end", () => {
        if (this.listener === c) this.listener = undefined;
        if (!this.closed) setTimeout(() => void this.listen(), 1000).unref();
      });
      c.on("notification", (n) => void this.heard(n.channel, n.payload ?? ""));
      try {
        await c.connect();
        await c.query(`LISTEN ${ASK}`);
        await c.query(`LISTEN ${ANSWER}`);
        if (this.closed) await c.end();
        else this.listener = c;
      } catch (err) {
        await c.end().catch(() => undefined);
        if (!this.closed) this.warn("cannot listen for the other nodes; retrying", connectionProblem(err, this.target));
      }
    })().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async heard(channel: string, payload: string): Promise<void> {
    let msg: { id?: string; topic?: string; node?: string };
    try {
      msg = JSON.parse(payload);
    } catch {
      return;
    }
    if (channel === ANSWER) {
      const b = msg.id === undefined ? undefined : this.asked.get(msg.id);
      if (b && typeof msg.node === "string") {
        b.answered.add(msg.node);
        b.poke();
      }
      return;
    }
    if (channel !== ASK || typeof msg.id !== "string" || typeof msg.topic !== "string") return;
    try {
      await runHandlers(this.handlers.get(msg.topic));
      await this.pool.query("SELECT pg_notify($1, $2)", [ANSWER, JSON.stringify({ id: msg.id, node: this.nodeId })]);
    } catch (err) {
      // no answer: the barrier fails, and what it guarded does not run
      this.warn(`could not finish the barrier ${msg.topic}`, err);
    }
  }

  async nodes(): Promise<string[]> {
    const r = await this.pool.query(
      "SELECT DISTINCT application_name AS a FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE $1",
      [`${PREFIX}%`],
    );
    // (mamkit-node:<id>, or mamkit-node:<id>:writer)
    return [...new Set(r.rows.map((row) => (row.a as string).slice(PREFIX.length).split(":")[0]!))];
  }

  async barrier(topic: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (this.listener === undefined) await this.listen();
    if (this.listener === undefined) return false; // not listening: would not hear the answers
    const id = randomUUID();
    let poke = () => {};
    const answered = new Set<string>();
    this.asked.set(id, { answered, poke: () => poke() });
    try {
      await this.pool.query("SELECT pg_notify($1, $2)", [ASK, JSON.stringify({ id, topic })]);
      for (;;) {
        const live = await this.nodes();
        if (live.includes(this.nodeId) && live.every((n) => answered.has(n))) return true;
        const left = deadline - Date.now();
        if (left <= 0) return false;
        // an answer, or a look at who is alive every 200 ms (a node that died drops out)
        await new Promise<void>((r) => {
          poke = r;
          setTimeout(r, Math.min(left, 200)).unref();
        });
      }
    } catch (err) {
      this.warn(`the barrier ${topic} failed`, err);
      return false;
    } finally {
      this.asked.delete(id);
    }
  }

  onBarrier(topic: string, handler: () => Promise<void>): () => void {
    return addHandler(this.handlers, topic, handler);
  }

  /** Session locks this node holds on its listening connection, by name. */
  private readonly holding = new Set<string>();

  async exclusive<T>(name: string, wait: boolean, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    const key = lockKey("", name);
    if (wait) return this.exclusiveWaiting(key, fn);
    if (this.holding.has(name)) return { ran: false }; // (this node runs it already)
    if (this.listener === undefined) await this.listen();
    const c = this.listener;
    if (c === undefined) throw new StorageError("backend", `cannot take the lock for ${name}: not connected to PostgreSQL (${this.target.setting})`);
    const r = await c.query("SELECT pg_try_advisory_lock($1, $2) AS got", [LOCK_LEADER, key]);
    if (r.rows[0]?.got !== true) return { ran: false };
    this.holding.add(name);
    try {
      return { ran: true, value: await fn() };
    } finally {
      this.holding.delete(name);
      // (if that connection was lost meanwhile, the lock went with it)
      if (this.listener === c) await c.query("SELECT pg_advisory_unlock($1, $2)", [LOCK_LEADER, key]).catch(() => undefined);
    }
  }

  /** For a run asked for by hand: waits for the lock on a connection of the pool. */
  private async exclusiveWaiting<T>(key: number, fn: () => Promise<T>): Promise<{ ran: true; value: T }> {
    let c: pg.PoolClient;
    try {
      c = await checkout(this.pool);
    } catch (err) {
      throw connectionProblem(err, this.target);
    }
    let broken: Error | undefined;
    try {
      await c.query("SELECT pg_advisory_lock($1, $2)", [LOCK_LEADER, key]);
      try {
        return { ran: true, value: await fn() };
      } finally {
        await c.query("SELECT pg_advisory_unlock($1, $2)", [LOCK_LEADER, key]).catch((err: Error) => {
          broken = err;
        });
      }
    } catch (err) {
      if (isConnectionError(err)) broken ??= err as Error;
      throw err;
    } finally {
      c.release(broken);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.connecting?.catch(() => undefined);
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
  }
}
