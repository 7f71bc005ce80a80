// Proves, with fast-check, that random sequences of allocate / reportUsage / release / renew and live changes of limits, maxShare and maxDepth leave the server's ledger equal to a plain in-memory model after every command.
import fc from "fast-check";
import { expect, test } from "vitest";
import {
  AllocateDocument,
  CreateContextDocument,
  GetLedgerDocument,
  MergeContextDocument,
  ReleaseDocument,
  RenewAllocationDocument,
  ReportUsageDocument,
} from "../gql/graphql.js";
import { errorCode, useTestServer, type GraphQLResponse, type ServerHandle } from "../helpers/app.js";
import { ledgerViolations } from "../../support/ledger-invariant.js";

const server = useTestServer();
let run = 0;

const KINDS = ["credits", "tokens"] as const;
type Kind = (typeof KINDS)[number];
type Amounts = Record<Kind, number>;
const zero = (): Amounts => ({ credits: 0, tokens: 0 });

interface ModelNode {
  id: string;
  parent: ModelNode | null;
  tier: number;
  kinds: Kind[];
  granted: Amounts;
  consumed: Amounts;
  reserved: Amounts;
  status: "ACTIVE" | "RELEASED";
  children: ModelNode[];
}

/** The ledger as API.md describes it, in plain TypeScript. */
class Model {
  limits: Amounts = { credits: 1000, tokens: 400 };
  maxShare = 1;
  maxDepth = 8;
  root = { consumed: zero(), reserved: zero() };
  nodes: ModelNode[] = [];
  constructor(readonly contextId: string) {}

  available(node: ModelNode | null, kind: Kind): number {
    const granted = node ? node.granted[kind] : this.limits[kind];
    const { consumed, reserved } = node ?? this.root;
    return Math.max(0, granted - consumed[kind] - reserved[kind]);
  }

  allocate(
    parent: ModelNode | null,
    request: Partial<Amounts>,
    mode: "EXACT" | "UP_TO",
  ): ModelNode | "INSUFFICIENT_RESOURCES" | "ALLOCATION_ENDED" | "LIMIT_EXCEEDED" | "VALIDATION_FAILED" {
    if (parent && parent.status !== "ACTIVE") return "ALLOCATION_ENDED";
    const tier = (parent?.tier ?? 1) + 1;
    if (tier > this.maxDepth) return "LIMIT_EXCEEDED";
    const kinds = KINDS.filter((k) => request[k] !== undefined);
    if (kinds.every((k) => request[k] === 0)) return "VALIDATION_FAILED";
    const grant = zero();
    let short = false;
    let any = false;
    for (const k of kinds) {
      const allowed = Math.floor(this.available(parent, k) * this.maxShare);
      grant[k] = Math.min(request[k]!, allowed);
      // The budget holds every kind; EXACT takes none its parent allocation was not granted.
      if (grant[k] < request[k]! || (mode === "EXACT" && parent && !parent.kinds.includes(k))) short = true;
      if (grant[k] > 0) any = true;
    }
    if ((mode === "EXACT" && short) || (mode === "UP_TO" && !any)) return "INSUFFICIENT_RESOURCES";
    const node: ModelNode = { id: `${this.contextId}#${this.nodes.length + 1}`, parent, tier, kinds, granted: grant, consumed: zero(), reserved: zero(), status: "ACTIVE", children: [] };
    for (const k of kinds) (parent ?? this.root).reserved[k] += grant[k];
    parent?.children.push(node);
    this.nodes.push(node);
    return node;
  }

  report(node: ModelNode, usage: Partial<Amounts>): "ok" | "USAGE_EXCEEDED" | "ALLOCATION_ENDED" {
    if (node.status !== "ACTIVE") return "ALLOCATION_ENDED";
    for (const k of KINDS) if (usage[k] !== undefined && usage[k]! > this.available(node, k)) return "USAGE_EXCEEDED";
    for (const k of KINDS) node.consumed[k] += usage[k] ?? 0;
    return "ok";
  }

  renew(node: ModelNode): "ok" | "ALLOCATION_ENDED" {
    return node.status === "ACTIVE" ? "ok" : "ALLOCATION_ENDED";
  }

  subtreeConsumed(node: ModelNode, k: Kind): number {
    return node.children.filter((c) => c.status === "ACTIVE").reduce((sum, c) => sum + c.consumed[k] + this.subtreeConsumed(c, k), 0);
  }

  release(node: ModelNode, usage: Partial<Amounts>): "ok" | "USAGE_EXCEEDED" | "ALLOCATION_ENDED" {
    if (node.status !== "ACTIVE") return "ALLOCATION_ENDED";
    for (const k of KINDS) {
      if (usage[k] !== undefined && usage[k]! > node.granted[k] - node.consumed[k] - this.subtreeConsumed(node, k)) return "USAGE_EXCEEDED";
    }
    for (const k of KINDS) node.consumed[k] += usage[k] ?? 0;
    this.end(node);
    return "ok";
  }

  private end(node: ModelNode): void {
    for (const child of node.children) if (child.status === "ACTIVE") this.end(child);
    const parent = node.parent ?? this.root;
    for (const k of node.kinds) {
      parent.reserved[k] -= node.granted[k];
      parent.consumed[k] += node.consumed[k];
    }
    node.status = "RELEASED";
  }
}

interface Real {
  server: ServerHandle;
}

const asMap = (list: readonly { kind: string; amount: number }[]) => Object.fromEntries(list.map((a) => [a.kind, a.amount]));
const amounts = (o: Partial<Amounts>) => Object.entries(o).map(([kind, amount]) => ({ kind, amount: amount! }));
const pickNode = (model: Model, index: number) => (model.nodes.length ? model.nodes[index % model.nodes.length]! : null);

async function expectSame(model: Model, real: Real): Promise<void> {
  const { context } = await real.server.data(GetLedgerDocument, { id: model.contextId });
  const budget = context!.budget;
  for (const k of KINDS) {
    expect(asMap(budget.granted)[k] ?? 0).toBe(model.root.reserved[k]);
    expect(asMap(budget.consumed)[k] ?? 0).toBe(model.root.consumed[k]);
  }
  expect(context!.allocations.edges.map(({ node }) => node).map((a) => a.id)).toEqual(model.nodes.map((n) => n.id));
  context!.allocations.edges.map(({ node }) => node).forEach((a, i) => {
    const n = model.nodes[i]!;
    expect(a.status).toBe(n.status);
    expect(a.tier).toBe(n.tier);
    for (const k of n.kinds) {
      expect(asMap(a.granted)[k]).toBe(n.granted[k]);
      expect(asMap(a.consumed)[k]).toBe(n.consumed[k]);
      expect(asMap(a.reserved)[k]).toBe(n.reserved[k]);
    }
  });
  // Limits are lowered live by PolicyCommand, so the budget itself may be over its limits.
  expect(await ledgerViolations(server.redis, real.server.config.keyPrefix, model.contextId, true)).toEqual([]);
}

const requestArb = fc
  .record({ credits: fc.integer({ min: 0, max: 700 }), tokens: fc.integer({ min: 0, max: 300 }) }, { requiredKeys: [] })
  .filter((r) => Object.keys(r).length > 0);

class AllocateCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly parentIndex: number | null, readonly request: Partial<Amounts>, readonly mode: "EXACT" | "UP_TO") {}
  check = () => true;
  async run(model: Model, real: Real) {
    const parent = this.parentIndex === null ? null : pickNode(model, this.parentIndex);
    const expected = model.allocate(parent, this.request, this.mode);
    const res = await real.server.request(AllocateDocument, { contextId: model.contextId, parentId: parent?.id, request: amounts(this.request), mode: this.mode });
    if (typeof expected === "string") expect(errorCode(res)).toBe(expected);
    else expect(res.data?.allocate.id).toBe(expected.id);
    await expectSame(model, real);
  }
  toString = () => `allocate(${this.parentIndex}, ${JSON.stringify(this.request)}, ${this.mode})`;
}

type Verdict = "ok" | "USAGE_EXCEEDED" | "ALLOCATION_ENDED";

/** A command on an existing allocation: the model's verdict and the server's answer must agree. */
class NodeCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly label: string,
    readonly index: number,
    readonly expect: (model: Model, node: ModelNode) => Verdict,
    readonly send: (server: ServerHandle, node: ModelNode) => Promise<GraphQLResponse<unknown>>,
  ) {}
  check = (model: Readonly<Model>) => model.nodes.length > 0;
  async run(model: Model, real: Real) {
    const node = pickNode(model, this.index)!;
    const expected = this.expect(model, node);
    const res = await this.send(real.server, node);
    expect(expected === "ok" ? res.errors : errorCode(res)).toEqual(expected === "ok" ? undefined : expected);
    await expectSame(model, real);
  }
  toString = () => `${this.label}(${this.index})`;
}

const report = (index: number, usage: Partial<Amounts>) =>
  new NodeCommand(`report ${JSON.stringify(usage)}`, index, (model, node) => model.report(node, usage), (server, node) =>
    server.request(ReportUsageDocument, { allocationId: node.id, usage: amounts(usage) }),
  );
const release = (index: number, usage: Partial<Amounts>) =>
  new NodeCommand(`release ${JSON.stringify(usage)}`, index, (model, node) => model.release(node, usage), (server, node) =>
    server.request(ReleaseDocument, { allocationId: node.id, usage: amounts(usage) }),
  );
const renew = (index: number) =>
  new NodeCommand("renew", index, (model, node) => model.renew(node), (server, node) =>
    server.request(RenewAllocationDocument, { allocationId: node.id, leaseMs: 600_000 }),
  );

class PolicyCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly credits: number, readonly maxShare: number, readonly maxDepth: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    model.limits = { ...model.limits, credits: this.credits };
    model.maxShare = this.maxShare;
    model.maxDepth = this.maxDepth;
    await real.server.data(MergeContextDocument, {
      id: model.contextId,
      merge: { resources: { limits: { credits: this.credits } }, policy: { allocation: { maxShare: this.maxShare, maxDepth: this.maxDepth } } },
    });
    await expectSame(model, real);
  }
  toString = () => `policy(credits ${this.credits}, maxShare ${this.maxShare}, maxDepth ${this.maxDepth})`;
}

const commands = [
  fc.tuple(fc.option(fc.nat(), { nil: null }), requestArb, fc.constantFrom("EXACT" as const, "UP_TO" as const)).map(([p, r, m]) => new AllocateCommand(p, r, m)),
  fc.tuple(fc.nat(), requestArb).map(([i, u]) => report(i, u)),
  fc.tuple(fc.nat(), fc.oneof(fc.constant({}), requestArb)).map(([i, u]) => release(i, u)),
  fc.nat().map((i) => renew(i)),
  fc.tuple(fc.integer({ min: 0, max: 1500 }), fc.constantFrom(0.25, 0.5, 1), fc.constantFrom(2, 3, 4, 8)).map(([c, s, d]) => new PolicyCommand(c, s, d)),
];

test("the server's ledger equals the model after every command", async () => {
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 25 }), async (cmds) => {
      const model = new Model(`model-${++run}`);
      await server.data(CreateContextDocument, {
        id: model.contextId,
        document: { resources: { limits: model.limits }, policy: { allocation: { maxShare: 1 } } },
      });
      await fc.asyncModelRun(() => ({ model, real: { server } }), cmds);
    }),
    { numRuns: 40 },
  );
}, 120_000);
