// Proves that a generated corpus of several hundred hostile requests over HTTP and WebSocket each gets a coded refusal (or, for WebSocket protocol abuse, a close code) quickly and without a stack or internal detail, while the server stays up and benign traffic alongside keeps succeeding.
import { request as httpRequest } from "node:http";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { beforeAll, expect, test } from "vitest";
import { hashKey, generateKey, KeyRing, type Role } from "../../src/security/auth.js";
import { useTestServer } from "../helpers/app.js";
import { API_CODES, hostileCorpus, type HttpCase, type OperationCase, type WsProtocolCase } from "../helpers/hostile-corpus.js";

/** Requests per key per second: low, so that the flood below reaches it. */
const RATE_LIMIT = 50;
/** Requests a hostile key serves in the whole run: under the limit, so a hostile request meets the check it probes, not the rate limit. */
const USES_PER_KEY = RATE_LIMIT - 10;
const MAX_REQUEST_BYTES = 65_536;
/**
 * A catastrophe bound, not a timing goal (those live in bench/): a request answered later than
 * this under the corpus's load points at a blow-up (exponential validation, a body read whole...).
 */
const ANSWER_WITHIN_MS = 2_000;
/** How long a request may go unanswered before it is recorded as a hang (and abandoned). */
const HANG_MS = 10_000;
const CONCURRENCY = 8;
const SCOPED = "in-hostile";
/** A context whose ledger and feed each weigh more than MAX_RESPONSE_BYTES. */
const BIG = "in-big";
const MAX_RESPONSE_BYTES = 65_536;
const BENIGN = "in-benign";

interface Key {
  readonly name: string;
  readonly role: Role;
  readonly authorization: string;
}
interface Failure {
  readonly transport: string;
  readonly category: string;
  readonly name: string;
  readonly problem: string;
}
interface Tally {
  count: number;
  slowestMs: number;
}

const keySpecs: { name: string; role: Role; scope: string[] }[] = [];
const secrets = new Map<string, string>();
function defineKey(name: string, role: Role, scope = ["in-*"]): Key {
  const key = generateKey();
  keySpecs.push({ name, role, scope });
  secrets.set(name, key);
  return { name, role, authorization: `Bearer ${key}` };
}
/** Keys that each serve at most USES_PER_KEY requests in the whole run, taken in turn. */
function keyPool(prefix: string, role: Role, size: number): () => Key {
  const keys = Array.from({ length: size }, (_, i) => defineKey(`${prefix}-${i}`, role));
  let used = 0;
  return () => {
    const key = keys[Math.floor(used++ / USES_PER_KEY)];
    if (!key) throw new Error(`key pool ${prefix} is exhausted: make it larger`);
    return key;
  };
}

/**
 * Admin keys for the benign traffic, handed out so that none reaches the rate limit: a key serves
 * at most USES_PER_KEY requests in its window, and its window (which the server starts at its
 * first request, so no later than that request's answer) is surely over a second and a margin
 * after that answer. Enough keys that the loop never finds them all busy; if it does, it says so.
 */
class BenignKeys {
  private readonly states: { key: Key; used: number; freeAt: number }[];
  constructor(size: number) {
    this.states = Array.from({ length: size }, (_, i) => ({ key: defineKey(`benign-${i}`, "admin", ["*"]), used: 0, freeAt: 0 }));
  }
  async run<T>(request: (key: Key) => Promise<T>): Promise<T> {
    const now = performance.now();
    const state = this.states.find((s) => s.used < USES_PER_KEY || now >= s.freeAt);
    if (!state) throw new Error(`every benign key is at its rate limit: add keys (${this.states.length} now)`);
    if (state.used >= USES_PER_KEY) state.used = 0;
    const first = state.used === 0;
    state.used++;
    if (first) state.freeAt = Infinity;
    try {
      return await request(state.key);
    } finally {
      if (first) state.freeAt = performance.now() + 1_000 + 100;
    }
  }
}

// Sized for the corpus: about 180 operation cases per transport plus the HTTP and WebSocket cases.
const hostileAgent = keyPool("hostile-agent", "agent", 30);
const hostileViewer = keyPool("hostile-viewer", "viewer", 10);
const benignKeys = new BenignKeys(24);
const setupKey = defineKey("setup", "admin", ["*"]);
const subscriberKey = defineKey("benign-subscriber", "admin", ["*"]);
const floodHttp = defineKey("flood-http", "agent");
const floodWs = defineKey("flood-ws", "agent");
const keyOf = (role: "agent" | "viewer") => (role === "agent" ? hostileAgent() : hostileViewer());

const server = useTestServer(() => ({
  keys: KeyRing.parse(JSON.stringify(keySpecs.map((k) => ({ ...k, sha256: hashKey(secrets.get(k.name)!) }))), "hostile test keys"),
  rateLimit: RATE_LIMIT,
  maxRequestBytes: MAX_REQUEST_BYTES,
  maxResponseBytes: MAX_RESPONSE_BYTES,
  // The corpus probes that keys which may not see the schema get neither introspection nor
  // schema hints: under the default (authenticated) every key may.
  introspection: "admin",
}));
let origin: URL;

beforeAll(() => {
  origin = new URL(server.url);
});

/** A GraphQL request over fetch; throws unless it has data and no errors. */
async function graphql<T = Record<string, unknown>>(key: Key, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: key.authorization },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: unknown[] };
  if (res.status !== 200 || body.errors?.length || !body.data) throw new Error(`HTTP ${res.status}: ${JSON.stringify(body).slice(0, 500)}`);
  return body.data;
}

/** What must never be in an answer: stacks, source locations, internal errors, and (for keys that may not see the schema) schema hints. */
const LEAKS: readonly [string, RegExp][] = [
  ["a stack", /"stack"\s*:|\n\s+at \S+ \(|\bat (?:async )?[\w.<>]+ \([^)]*:\d+:\d+\)/],
  ["a source location", /\.(?:ts|js|mjs|cjs):\d+|node_modules|file:\/\/|\/work\//],
  ["an internal error", /originalError|TypeError|RangeError|ReferenceError|SyntaxError|Maximum call stack|Cannot read propert|ReplyError|ioredis|WRONGTYPE|NOSCRIPT|ERR /],
  ["a schema hint", /Did you mean/],
];

interface ErrorJson {
  readonly message?: unknown;
  readonly extensions?: { readonly code?: unknown };
}

/** Problems with the errors of an answer: none, or one without an expected code. */
function checkErrors(errors: unknown, codes: readonly string[]): string[] {
  if (!Array.isArray(errors) || errors.length === 0) return [`no errors: ${JSON.stringify(errors)?.slice(0, 300)}`];
  const problems: string[] = [];
  for (const error of errors as ErrorJson[]) {
    const code = error?.extensions?.code;
    if (typeof error?.message !== "string") problems.push(`an error without a message: ${JSON.stringify(error).slice(0, 300)}`);
    if (typeof code !== "string" || !API_CODES.includes(code)) problems.push(`code ${JSON.stringify(code)} is not one of API.md's: ${JSON.stringify(error).slice(0, 300)}`);
    else if (!codes.includes(code)) problems.push(`code ${code}, expected ${codes.join(" or ")}: ${String(error.message).slice(0, 300)}`);
  }
  return problems;
}

function checkLeaks(text: string): string[] {
  return LEAKS.filter(([, pattern]) => pattern.test(text)).map(([what, pattern]) => `the answer leaks ${what}: …${text.slice(Math.max(0, text.search(pattern) - 80), text.search(pattern) + 120)}…`);
}

interface HttpAnswer {
  readonly status: number;
  readonly text: string;
  readonly ms: number;
}

/**
 * Sends one raw HTTP request and resolves with the answer, or rejects when the connection fails
 * before an answer or none came within HANG_MS. An error writing the body after the answer
 * arrived (the server refused the body early and closed) is expected and ignored.
 */
function sendHttp(c: Pick<HttpCase, "method" | "path" | "headers" | "body">, authorization: string | undefined): Promise<HttpAnswer> {
  // The body is made before the clock starts: client and server share this process's event loop.
  const sized = c.body?.kind === "sized" ? c.body.bytes() : undefined;
  const chunks = c.body?.kind === "chunked" ? c.body.chunks() : undefined;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...c.headers };
    if (authorization !== undefined) headers.authorization = authorization;
    if (sized) headers["content-length"] = String(sized.length);
    let answered = false;
    const started = performance.now();
    const req = httpRequest({ host: origin.hostname, port: origin.port, method: c.method, path: c.path, headers, agent: false }, (res) => {
      answered = true;
      const received: Buffer[] = [];
      res.on("data", (data: Buffer) => received.push(data));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(received).toString("utf8"), ms: performance.now() - started });
        req.destroy();
      });
      res.on("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`the answer broke off: ${err.message}`));
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${HANG_MS} ms`));
    }, HANG_MS);
    req.on("error", (err) => {
      if (answered) return;
      clearTimeout(timer);
      reject(new Error(`the connection failed before an answer: ${err.message}`));
    });
    if (chunks) {
      for (const piece of chunks) req.write(piece);
      req.end();
    } else req.end(sized);
  });
}

/** A message of graphql-transport-ws as received. */
interface WsMessage {
  readonly type: string;
  readonly id?: string;
  readonly payload?: unknown;
}

interface WsConversation {
  readonly messages: WsMessage[];
  /** The close code and reason, when the server closed the connection. */
  readonly closeCode?: number;
  readonly closeReason?: string;
  readonly ms: number;
}

/**
 * Opens a graphql-transport-ws connection, sends connection_init (unless `init` is null) and,
 * once acknowledged (at once without init), `messages`; resolves when `done` holds for what was
 * received, or when the connection closes. Rejects after HANG_MS.
 */
function converse(
  protocol: string | null,
  init: Record<string, unknown> | null,
  messages: readonly (() => string | Buffer)[],
  done: (received: WsMessage[]) => boolean,
): Promise<WsConversation> {
  const made = messages.map((message) => message());
  return new Promise((resolve, reject) => {
    const socket = protocol === null ? new WebSocket(`ws://${origin.host}${origin.pathname}`) : new WebSocket(`ws://${origin.host}${origin.pathname}`, protocol);
    const received: WsMessage[] = [];
    let started = performance.now();
    let settled = false;
    const finish = (closeCode?: number, closeReason?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ messages: received, closeCode, closeReason, ms: performance.now() - started });
      if (closeCode === undefined) socket.close(1000);
    };
    const timer = setTimeout(() => {
      settled = true;
      socket.terminate();
      reject(new Error(`no answer within ${HANG_MS} ms; received ${JSON.stringify(received).slice(0, 300)}`));
    }, HANG_MS);
    const sendAll = () => {
      started = performance.now();
      for (const message of made) socket.send(message);
    };
    socket.on("open", () => {
      if (init === null) sendAll();
      else socket.send(JSON.stringify({ type: "connection_init", payload: init }));
    });
    socket.on("message", (data) => {
      let message: WsMessage;
      try {
        message = JSON.parse(String(data)) as WsMessage;
      } catch {
        message = { type: "unparsable", payload: String(data).slice(0, 300) };
      }
      received.push(message);
      if (message.type === "connection_ack") sendAll();
      else if (done(received)) finish();
    });
    socket.on("close", (code, reason) => finish(code, String(reason)));
    socket.on("error", () => {
      // The close that follows says what happened.
    });
  });
}

/** Runs `work` over `items`, at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** A change-feed subscriber over graphql-ws, authenticated by connectionParams, collecting seqs. */
function feedSubscriber(key: Key, contextId: string, afterSeq: number) {
  const seqs: number[] = [];
  const errors: unknown[] = [];
  const listeners = new Set<() => void>();
  const client: Client = createClient({
    url: server.url.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: key.authorization },
    retryAttempts: 0,
  });
  client.subscribe<{ contextChanges: { changes: { seq: number }[] } }>(
    {
      query: "subscription S($ids: [ID!], $after: [CursorInput!]) { contextChanges(contextIds: $ids, after: $after) { changes { seq } } }",
      variables: { ids: [contextId], after: [{ contextId, seq: afterSeq }] },
    },
    {
      next: (result) => {
        if (result.errors) errors.push(...result.errors);
        seqs.push(...(result.data?.contextChanges.changes.map((c) => c.seq) ?? []));
        listeners.forEach((l) => l());
      },
      error: (err) => {
        errors.push(err);
        listeners.forEach((l) => l());
      },
      complete: () => listeners.forEach((l) => l()),
    },
  );
  return {
    seqs,
    errors,
    /** Resolves once every seq of `wanted` was received; rejects after 15 s or on an error. */
    until(wanted: readonly number[]): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (errors.length > 0) done(() => reject(new Error(`the subscriber got errors: ${JSON.stringify(errors).slice(0, 500)}`)));
          else if (wanted.every((seq) => seqs.includes(seq))) done(resolve);
        };
        const timer = setTimeout(() => done(() => reject(new Error(`the subscriber has ${seqs.length} seqs, missing ${wanted.filter((s) => !seqs.includes(s)).slice(0, 20).join(",")}`))), 15_000);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    close: () => client.dispose(),
  };
}

test("every hostile request gets a coded refusal quickly, the server stays up, and benign traffic keeps succeeding", async () => {
  const suiteStarted = performance.now();
  // A scoped context with a budget and an allocation, so that arguments reach the resolvers' checks.
  await graphql(setupKey, `mutation { createContext(id: "${SCOPED}", document: { resources: { limits: { credits: 1000 } } }) { id } }`);
  const { allocate } = await graphql<{ allocate: { id: string } }>(
    setupKey,
    `mutation { allocate(contextId: "${SCOPED}", request: [{ kind: "credits", amount: 10 }], mode: EXACT) { id } }`,
  );
  await graphql(setupKey, `mutation { createContext(id: "${BENIGN}", document: { n: 0 }) { id } }`);
  // 240 allocations of about 400 bytes each (and as many feed entries), 30 per request.
  await graphql(setupKey, `mutation { createContext(id: "${BIG}", document: { resources: { limits: { credits: 1000000 } } }) { id } }`);
  for (let i = 0; i < 8; i++) {
    const allocations = Array.from({ length: 30 }, (_, j) => `a${j}: allocate(contextId: "${BIG}", request: [{ kind: "credits", amount: 1 }], mode: EXACT, purpose: "weight ${i}-${j}") { id }`);
    await graphql(setupKey, `mutation { ${allocations.join(" ")} }`);
  }

  const corpus = hostileCorpus(server.config, SCOPED, allocate.id, BIG);
  const failures: Failure[] = [];
  const tallies = new Map<string, Tally>();
  const tally = (transport: string, category: string, ms: number) => {
    const key = `${transport} / ${category}`;
    const t = tallies.get(key) ?? { count: 0, slowestMs: 0 };
    t.count++;
    t.slowestMs = Math.max(t.slowestMs, ms);
    tallies.set(key, t);
  };
  const fail = (transport: string, c: { category: string; name: string }, problems: string[]) => {
    for (const problem of problems) failures.push({ transport, category: c.category, name: c.name, problem });
  };
  const slow = (ms: number) => (ms > ANSWER_WITHIN_MS ? [`answered in ${Math.round(ms)} ms, past the ${ANSWER_WITHIN_MS} ms catastrophe bound`] : []);

  // The corpus must probe what it says: an operation case that is over the body bound would only test that bound.
  for (const c of corpus.operations) {
    const bytes = Buffer.byteLength(c.json);
    if (bytes > MAX_REQUEST_BYTES - 200) fail("corpus", c, [`the operation is ${bytes} bytes, over the request bound`]);
  }

  // Benign traffic: a subscriber to one context, and a loop of creates, patches and reads, from before the corpus until after it.
  const subscriber = feedSubscriber(subscriberKey, BENIGN, 1);
  const benign = { requests: 0, iterations: 0, failures: [] as string[], seqs: [] as number[] };
  let stopBenign = false;
  let firstIteration!: () => void;
  const benignRunning = new Promise<void>((resolve) => (firstIteration = resolve));
  const benignLoop = (async () => {
    for (let i = 1; !stopBenign; i++) {
      const step = async <T>(what: string, query: string, variables: Record<string, unknown>, check: (data: T) => boolean) => {
        benign.requests++;
        try {
          const data = await benignKeys.run(async (key) => {
            const started = performance.now();
            const answer = await graphql<T>(key, query, variables);
            const ms = performance.now() - started;
            if (ms > ANSWER_WITHIN_MS) benign.failures.push(`${what} ${i}: answered in ${Math.round(ms)} ms`);
            return answer;
          });
          if (!check(data)) benign.failures.push(`${what} ${i}: unexpected ${JSON.stringify(data).slice(0, 300)}`);
          return data;
        } catch (err) {
          benign.failures.push(`${what} ${i}: ${(err as Error).message}`);
          return undefined;
        }
      };
      const id = `${BENIGN}-${i}`;
      await step<{ createContext: { id: string; version: number } }>(
        "createContext",
        "mutation C($id: ID!, $doc: JSON!) { createContext(id: $id, document: $doc) { id version } }",
        { id, doc: { i, tags: ["benign"] } },
        (d) => d.createContext.id === id && d.createContext.version === 1,
      );
      const patched = await step<{ patchContext: { seq: number } }>(
        "patchContext",
        'mutation P($id: ID!, $n: JSON) { patchContext(id: $id, patch: [{ op: replace, path: "/n", value: $n }]) { seq } }',
        { id: BENIGN, n: i },
        (d) => Number.isInteger(d.patchContext.seq),
      );
      if (patched) benign.seqs.push(patched.patchContext.seq);
      await step<{ context: { value: unknown } }>("read value", 'query V($id: ID!) { context(id: $id) { value(path: "/n") } }', { id: BENIGN }, (d) => d.context.value === i);
      await step<{ context: { document: { i: number } } }>("read document", "query D($id: ID!) { context(id: $id) { version document } }", { id }, (d) => d.context.document.i === i);
      benign.iterations++;
      firstIteration();
    }
  })();
  await benignRunning;

  const httpOperation = async (c: OperationCase, i: number) => {
    const key = keyOf(c.role);
    // Both media types a client may ask for: yoga answers them with different statuses.
    const accept = i % 2 === 0 ? "application/json" : "application/graphql-response+json";
    try {
      const answer = await sendHttp({ method: "POST", path: "/graphql", headers: { "content-type": "application/json", accept }, body: { kind: "sized", bytes: () => Buffer.from(c.json) } }, key.authorization);
      tally("http", c.category, answer.ms);
      fail("http", c, [...slow(answer.ms), ...checkAnswer(answer, c.codes, answer.status >= 500 ? [`HTTP ${answer.status}`] : [])]);
    } catch (err) {
      fail("http", c, [(err as Error).message]);
    }
  };
  const httpCase = async (c: HttpCase) => {
    const authorization = c.auth === "none" ? undefined : typeof c.auth === "string" ? keyOf(c.auth).authorization : c.auth.header;
    try {
      const answer = await sendHttp(c, authorization);
      tally("http", c.category, answer.ms);
      const status = c.statuses.includes(answer.status) ? [] : [`HTTP ${answer.status}, expected ${c.statuses.join(" or ")}: ${answer.text.slice(0, 300)}`];
      fail("http", c, [...slow(answer.ms), ...checkAnswer(answer, c.codes, status)]);
    } catch (err) {
      fail("http", c, [(err as Error).message]);
    }
  };
  const wsOperation = async (c: OperationCase) => {
    const key = keyOf(c.role);
    const subscribe = () => `{"id":"1","type":"subscribe","payload":${c.json}}`;
    try {
      const conversation = await converse("graphql-transport-ws", { authorization: key.authorization }, [subscribe], (received) =>
        received.some((m) => m.type === "error" || m.type === "complete"),
      );
      tally("ws", c.category, conversation.ms);
      const text = JSON.stringify(conversation.messages);
      const errors = conversation.messages.flatMap((m) =>
        m.type === "error" ? (Array.isArray(m.payload) ? m.payload : [m.payload]) : m.type === "next" ? ((m.payload as { errors?: unknown[] })?.errors ?? []) : [],
      );
      const closed = conversation.closeCode === undefined ? [] : [`the connection closed with ${conversation.closeCode} instead of answering: ${text.slice(0, 300)}`];
      fail("ws", c, [...slow(conversation.ms), ...closed, ...checkErrors(errors, c.codes), ...checkLeaks(text)]);
    } catch (err) {
      fail("ws", c, [(err as Error).message]);
    }
  };
  const wsProtocol = async (c: WsProtocolCase) => {
    const init = c.init === "agent" ? { authorization: hostileAgent().authorization } : c.init;
    try {
      const conversation = await converse(c.protocol, init, c.messages, () => false);
      tally("ws", c.category, conversation.ms);
      const code = c.closeCodes.includes(conversation.closeCode ?? -1) ? [] : [`closed with ${conversation.closeCode}, expected ${c.closeCodes.join(" or ")}; received ${JSON.stringify(conversation.messages).slice(0, 300)}`];
      fail("ws", c, [...slow(conversation.ms), ...code, ...checkLeaks(JSON.stringify([conversation.messages, conversation.closeReason]))]);
    } catch (err) {
      fail("ws", c, [(err as Error).message]);
    }
  };

  /** One key over its limit: the requests within it succeed, the rest get RATE_LIMITED (over HTTP with status 429). */
  const floodOverHttp = async (n: number) => {
    const c = { category: "rate-limit flood", name: `${n} concurrent requests of one key` };
    const answers = await Promise.all(
      Array.from({ length: n }, () =>
        sendHttp({ method: "POST", path: "/graphql", headers: { "content-type": "application/json" }, body: { kind: "sized", bytes: () => Buffer.from('{"query":"{ health { ok } }"}') } }, floodHttp.authorization).catch(
          (err: Error) => err,
        ),
      ),
    );
    let limited = 0;
    for (const answer of answers) {
      if (answer instanceof Error) {
        fail("http", c, [answer.message]);
        continue;
      }
      tally("http", c.category, answer.ms);
      const body = parse(answer.text) as { data?: unknown; errors?: unknown[] } | undefined;
      if (answer.status === 200 && body?.data && !body.errors) continue;
      limited++;
      fail("http", c, [...slow(answer.ms), ...checkAnswer(answer, ["RATE_LIMITED"], answer.status === 429 ? [] : [`HTTP ${answer.status}, expected 429`])]);
    }
    if (limited === 0) fail("http", c, ["no request was RATE_LIMITED"]);
  };
  const floodOverWs = async (n: number) => {
    const c = { category: "rate-limit flood", name: `${n} subscribes of one key on one connection` };
    const ids = Array.from({ length: n }, (_, i) => String(i));
    try {
      const conversation = await converse(
        "graphql-transport-ws",
        { authorization: floodWs.authorization },
        ids.map((id) => () => JSON.stringify({ id, type: "subscribe", payload: { query: "{ health { ok } }" } })),
        (received) => ids.every((id) => received.some((m) => m.id === id && (m.type === "error" || m.type === "complete"))),
      );
      for (let i = 0; i < n; i++) tally("ws", c.category, conversation.ms);
      if (conversation.closeCode !== undefined) fail("ws", c, [`the connection closed with ${conversation.closeCode}`]);
      const refused = conversation.messages.filter((m) => m.type === "error");
      if (refused.length === 0) fail("ws", c, ["no subscribe was RATE_LIMITED"]);
      fail("ws", c, [...slow(conversation.ms), ...refused.flatMap((m) => checkErrors(m.payload, ["RATE_LIMITED"])), ...checkLeaks(JSON.stringify(conversation.messages))]);
    } catch (err) {
      fail("ws", c, [(err as Error).message]);
    }
  };

  const { http, ws } = corpus;
  await Promise.all([
    pool(
      corpus.operations.map((c, i) => [c, i] as const),
      CONCURRENCY,
      ([c, i]) => httpOperation(c, i),
    ),
    pool(http.filter((c) => !c.heavy), CONCURRENCY, httpCase),
    pool(corpus.operations, CONCURRENCY, wsOperation),
    pool(ws.filter((c) => !c.heavy), CONCURRENCY, wsProtocol),
    // Megabytes on the wire one at a time: a transfer is not a blow-up.
    pool([...http.filter((c) => c.heavy).map((c) => () => httpCase(c)), ...ws.filter((c) => c.heavy).map((c) => () => wsProtocol(c))], 1, (run) => run()),
  ]);
  // The floods after the rest, so that their bursts are not what the catastrophe bound measures elsewhere.
  await Promise.all([floodOverHttp(3 * RATE_LIMIT), floodOverWs(2 * RATE_LIMIT)]);

  stopBenign = true;
  await benignLoop;
  const received = await subscriber.until(benign.seqs).then(
    () => "every change",
    (err: Error) => err.message,
  );
  subscriber.close();

  // The server is up and serving.
  const health = await fetch(new URL("/health", origin));
  const ready = await fetch(new URL("/ready", origin));
  const after = await benignKeys.run((key) => graphql<{ health: { ok: boolean }; context: { value: unknown } }>(key, `{ health { ok } context(id: "${BENIGN}") { value(path: "/n") } }`));

  const summary = [...tallies].sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => `${k}: ${t.count} (slowest ${Math.round(t.slowestMs)} ms)`);
  const total = [...tallies.values()].reduce((sum, t) => sum + t.count, 0);
  const generated = 2 * corpus.operations.length + http.length + ws.length;
  console.info(
    [
      `hostile corpus: ${generated} generated requests and ${total - generated} of rate-limit floods in ${Math.round(performance.now() - suiteStarted)} ms`,
      ...summary,
      `benign: ${benign.requests} requests in ${benign.iterations} iterations, ${subscriber.seqs.length} changes received`,
    ].join("\n"),
  );

  expect(failures.map((f) => `[${f.transport}] ${f.category} / ${f.name}: ${f.problem}`)).toEqual([]);
  expect(generated).toBeGreaterThanOrEqual(300);
  expect(benign.failures).toEqual([]);
  expect(benign.iterations).toBeGreaterThan(0);
  expect(received).toBe("every change");
  // Only the benign loop changes that context: the subscriber saw exactly its patches, in order.
  expect(subscriber.seqs).toEqual(benign.seqs);
  expect(health.status).toBe(200);
  expect(ready.status).toBe(200);
  expect(after.health.ok).toBe(true);
  expect(after.context.value).toBe(benign.iterations);
});

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Problems with an HTTP answer: not JSON, errors without the expected codes, leaks; `status` adds the caller's status problems. */
function checkAnswer(answer: HttpAnswer, codes: readonly string[], status: string[]): string[] {
  const body = parse(answer.text) as { errors?: unknown } | undefined;
  if (body === undefined) return [...status, `the answer is not JSON (HTTP ${answer.status}): ${JSON.stringify(answer.text.slice(0, 300))}`];
  return [...status, ...checkErrors(body.errors, codes), ...checkLeaks(answer.text)];
}
