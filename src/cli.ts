/**
 * The provium command line. One top-level catch maps errors to exit codes:
 * 0 success (plan: no changes), 2 plan with changes under --detailed-exitcode,
 * 1 any error (bad input, conflicts, missing kernel features, failed commands, locks).
 */
import { Command } from 'commander';
import { Chalk } from 'chalk';
import { createInterface } from 'node:readline/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify as yamlStringify } from 'yaml';
import { checkSources, schemaPath, type CheckResult, type LoadOptions, type SourceInput } from './load/index.js';
import { checkSourcesCached } from './load/cache.js';
import { parseVarFlags } from './load/vars.js';
import { toData, withoutKeys } from './load/tree.js';
import { checkScenario } from './scenario/compile.js';
import { renderEvent, runScenario, type RunEvent } from './scenario/run.js';
import { InputError, ProviumError, formatDiagnostic } from './model/diagnostics.js';
import type { Topology } from './model/topology.js';
import { HostRunner, CommandError } from './host/runner.js';
import { planFor, applyPlan, ApplyError, recordApplied, recordDestroyed } from './apply/index.js';
import { fingerprint, firstDifference, isPlanFile, loadPlanTopology, PLAN_FORMAT, PLAN_KIND, planSource, readPlanFile, writePlanFile, type PlanFile, type PlanSource } from './apply/planfile.js';
import { acquireLock } from './apply/statedir.js';
import { resolveHostNetns } from './engine/hostns.js';
import { computePlan, emptyTopology } from './plan/index.js';
import { realize } from './plan/realize.js';
import { emptyState } from './model/state.js';
import type { HostContext } from './plan/commands.js';
import { renderPlan, summary } from './render/text.js';
import { planNames, renderPlanFile } from './render/plan-file.js';
import { processesInNetns } from './host/proc.js';
import type { Plan } from './plan/types.js';
import type { HostState } from './model/state.js';
import { planJson, diagnosticJson, FORMAT_VERSION } from './render/json.js';
import { renderShow, showJson } from './render/show.js';
import { readCounters, readDropCounters } from './observe/counters.js';
import { nodeNetns } from './model/names.js';
import { captureCommand, type CaptureOptions } from './capture.js';
import { renderDot, renderMermaid } from './render/graph.js';
import { doctorJson, doctorReady, renderDoctor, runDoctor } from './doctor.js';
import { probeCommand, type ProbeCliOptions } from './probe/cli.js';
import { runInNode } from './exec-run.js';
import { nodeAddress } from './addr.js';
import { listLabs, lsJson, renderLs } from './labs.js';
import { hostsApply, hostsPlan, HostsExit, type Io as HostsIo } from './hosts/cli.js';
import { closeHosts, openHosts } from './hosts/hosts.js';
import { doctorHosts } from './hosts/doctor.js';

/** Raised to leave with a given exit code after output was written. */
export class ExitError extends Error {
  constructor(public readonly code: number, message = '') {
    super(message);
  }
}

interface Globals {
  netns?: string;
  color: boolean;
}

/** JSON output: indented on a terminal, compact for programs (large plans print faster). */
function printJson(doc: unknown): void {
  writeJsonText(JSON.stringify(doc, null, process.stdout.isTTY ? 2 : undefined));
}

function writeJsonText(text: string): void {
  // Written as one Buffer: Node's path for a large string is about twice as slow (a
  // 200-node apply's --json document is ~5 MB: ~35 ms as a string, ~18 ms as a Buffer).
  process.stdout.write(Buffer.from(text + '\n', 'utf8'));
}

/**
 * apply/destroy --json: the plan's part of the result document, made while the host
 * commands run (the main thread mostly waits for the kernel then: a 200-node destroy's
 * document takes ~40 ms to build and serialize, its namespaces' cleanup ~0.3 s). `start`
 * schedules it (once); `print` writes it with the fields only known at the end, in the
 * same key order and bytes as printJson({ ...planJson(plan), ...tail }). Compact output
 * only: on a terminal (indented) it is all made at the end.
 */
function deferredPlanJson(plan: Plan): { start(): void; print(tail: Record<string, unknown>): void } {
  let text: string | undefined;
  let started = false;
  return {
    start() {
      if (started || process.stdout.isTTY) return;
      started = true;
      setImmediate(() => {
        text = JSON.stringify(planJson(plan));
      });
    },
    print(tail) {
      if (text === undefined || process.stdout.isTTY) printJson({ ...planJson(plan), ...tail });
      else writeJsonText(`${text.slice(0, -1)},${JSON.stringify(tail).slice(1)}`);
    },
  };
}

function useColor(g: Globals): boolean {
  return g.color && !process.env.NO_COLOR && process.stdout.isTTY === true;
}

const warned = new Set<string>();
/** Prints a warning on stderr (state directory problems, stale locks), each message once. */
const warn = (m: string): void => {
  if (warned.has(m)) return;
  warned.add(m);
  process.stderr.write(`warning: ${m}\n`);
};

/**
 * The lab's host namespace (src/engine/hostns.ts): --netns, else the one recorded when
 * the lab was applied (said on stderr), else the root namespace. `fallback`: a saved
 * plan's namespace.
 */
function hostCtx(g: Globals, lab: string, opts: { fallback?: string | null; command?: string; quiet?: boolean } = {}): HostContext {
  const r = resolveHostNetns(lab, g.netns, { fallback: opts.fallback, destroying: opts.command === 'destroy', option: '--netns', warn });
  if (r.note && !opts.quiet) process.stderr.write(`provium: ${r.note}\n`);
  return { hostNetns: r.netns, warn };
}

function requireRoot(): void {
  if (process.getuid && process.getuid() !== 0) throw new ProviumError('provium needs root (CAP_NET_ADMIN) to read and change network namespaces, links, qdiscs and nftables');
}

/** A spinner on a TTY (ora, loaded only then), plain step lines otherwise (CI logs stay clean). */
async function progress(enabled: boolean) {
  const tty = process.stderr.isTTY === true && enabled;
  const sp = tty ? (await import('ora')).default({ stream: process.stderr }) : undefined;
  return {
    step(text: string) {
      if (sp) {
        if (!sp.isSpinning) sp.start(text);
        else sp.text = text;
      } else if (enabled) process.stderr.write(`${text}\n`);
    },
    stop() {
      sp?.stop();
    },
  };
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const a = await rl.question(question);
  rl.close();
  return a.trim() === 'yes';
}

/**
 * The plan as text: at the level of the file by default (render/plan-file.ts), the host
 * items with --verbose (render/text.ts). Names the processes a deletion of a node ends.
 */
function planText(plan: Plan, t: Topology, observed: HostState, o: { verbose?: boolean; commands?: boolean }, color: boolean): string {
  if (o.verbose) return renderPlan(plan, { color, commands: o.commands });
  // Nothing to name in a plan without changes (a no-op plan of a big lab skips indexing every NIC).
  if (plan.changes.length === 0) return renderPlanFile(plan, { ports: new Map(), bridges: new Map(), namespaces: new Map(), addresses: new Map(), macs: new Map() }, { color, commands: o.commands });
  const gone = plan.changes.flatMap((c) => c.items).filter((i) => i.before?.ref.kind === 'netns' && (i.action === 'delete' || i.action === 'replace')).map((i) => (i.before!.ref as { ns: string }).ns);
  return renderPlanFile(plan, planNames(t, [observed], processesInNetns(gone)), { color, commands: o.commands });
}

/** provium's version, from its package.json (found next to its schemas). */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(dirname(schemaPath()), '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The options every command taking FILE has: `-f OVERLAY` (repeatable, later wins) and `--var NAME=VALUE` (repeatable). */
interface FileOpts {
  file: string[];
  var: string[];
}

/** Adds -f/--file and --var to a command. */
function fileOptions(cmd: Command): Command {
  return cmd
    .option('-f, --file <overlay>', 'merge this overlay file onto FILE (repeatable; later files win; - reads standard input)', collect, [])
    .option('--var <name=value>', 'value of ${NAME} in the files (repeatable; wins over the environment)', collect, []);
}

/** The sources and load options of FILE plus its -f overlays and --var values. Throws ProviumError on a bad --var. */
function sourcesOf(file: string, o: FileOpts): { sources: SourceInput[]; opts: LoadOptions } {
  const { vars, errors } = parseVarFlags(o.var ?? []);
  if (errors.length) throw new ProviumError(errors[0], 'write --var NAME=VALUE, e.g. --var LEADER=r1');
  return { sources: [file, ...(o.file ?? [])].map((name) => ({ name })), opts: { vars } };
}

/** What was loaded: the topology, and every file merged (names as shown, texts as read) and the variables used. */
interface Loaded {
  t: Topology;
  r: CheckResult;
}

/** Commands whose load goes through the topology cache: those that read the host as root. */
const CACHED_COMMANDS = new Set(['plan', 'apply', 'destroy', 'show', 'exec', 'capture']);

/**
 * Loads FILE with its -f overlays and --var variables; InputError when invalid (with
 * `json`, the validate document {format_version, valid: false, diagnostics} is printed on
 * stdout first). A scenario file's steps are not run by this command: it says so
 * (stderr) and uses the topology.
 */
function load(file: string, o: FileOpts, command: string, json = false): Loaded {
  const { sources, opts } = sourcesOf(file, o);
  // The commands that read the host as root go through the topology cache (load/cache.ts);
  // validate, graph, render, doctor and run never do.
  const cached = CACHED_COMMANDS.has(command);
  const c = cached ? checkSourcesCached(sources, opts) : undefined;
  const r = c ? c.r : checkSources(sources, opts);
  if (!r.topology) {
    if (json) printJson({ format_version: FORMAT_VERSION, valid: false, diagnostics: r.diagnostics.map(diagnosticJson), files: r.files.map((f) => f.name) });
    throw new InputError(r.diagnostics);
  }
  if (c ? c.steps : r.merged?.kind === 'map' && r.merged.entries.has('steps')) {
    process.stderr.write(`note: ${file} has steps:, which provium run runs; ${command} uses its topology and ignores them\n`);
  }
  return { t: r.topology, r };
}

/** A saved plan's sources: every file read (absolute path, `-` for standard input), with the very text that was loaded. */
function planSources(r: CheckResult): PlanSource[] {
  return r.files.map((f) => planSource(f.path, f.text));
}

/** "Merged 2 files (later wins): lab.yaml, cut.yaml" when more than one file was read. */
function mergedLine(r: CheckResult): string {
  return r.files.length > 1 ? `Merged ${r.files.length} files (later wins): ${r.files.map((f) => f.name).join(', ')}\n\n` : '';
}

/** The topology of a saved plan (see apply/planfile.ts); with `json`, invalid stored text prints the validate document. */
function loadSaved(saved: PlanFile, file: string, json: boolean): Topology {
  try {
    return loadPlanTopology(saved, file);
  } catch (e) {
    if (json && e instanceof InputError) printJson({ format_version: FORMAT_VERSION, valid: false, diagnostics: e.diagnostics.map(diagnosticJson) });
    throw e;
  }
}

/** Output and prompts for the multi-host commands (src/hosts/cli.ts). */
async function hostsIo(g: Globals, quiet: boolean): Promise<HostsIo> {
  const prog = await progress(!quiet);
  return {
    out: (x) => process.stdout.write(x), err: (x) => process.stderr.write(x), json: printJson, color: useColor(g), confirm,
    step: (x) => prog.step(x), stopProgress: () => prog.stop(),
  };
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('provium')
    .version(packageVersion(), '-V, --version', 'print the version')
    .description('Declarative network labs on Linux: plan, apply and destroy bridges, nodes, partitions and impairments.')
    .option('--netns <name>', "put the lab's host side (bridges, ports, qdiscs, nft tables) in this existing network namespace")
    .option('--no-color', 'no colors (also off for NO_COLOR and when stdout is not a terminal)')
    .showHelpAfterError()
    .exitOverride();
  const globals = (): Globals => program.opts() as Globals;

  fileOptions(
    program
      .command('validate')
      .description('check a topology or scenario file (with its overlays): schema, meaning, steps; every problem at once, with file:line:column')
      .argument('<file>')
      .option('--json', 'machine-readable output'),
  ).action((file: string, o: FileOpts & { json?: boolean }) => {
    const { sources, opts } = sourcesOf(file, o);
    const r = checkSources(sources, opts);
    // A scenario is validated with its steps (every apply's topology, every node, every duration).
    const scenario = r.merged?.kind === 'map' && r.merged.entries.has('steps') ? checkScenario(sources, opts) : undefined;
    const diagnostics = scenario ? scenario.diagnostics : r.diagnostics;
    const files = (scenario?.files ?? r.files).map((f) => f.name);
    const errors = diagnostics.filter((d) => d.severity === 'error');
    if (o.json) {
      printJson({ format_version: FORMAT_VERSION, valid: errors.length === 0, diagnostics: diagnostics.map(diagnosticJson), files });
    } else {
      writeDiagnostics(diagnostics.map(formatDiagnostic));
      const what = scenario?.scenario ? `, scenario of ${scenario.scenario.steps.length} step(s)` : '';
      if (errors.length === 0) process.stdout.write(`${file}: valid (lab ${r.topology?.lab}${what}${files.length > 1 ? `; files merged: ${files.join(', ')}` : ''})\n`);
    }
    if (errors.length) throw new ExitError(1);
  });

  fileOptions(program
    .command('plan')
    .description('observe the host, diff it against the file and show the minimal change; changes nothing')
    .argument('<file>'))
    .option('--json', 'machine-readable plan (format_version 1)')
    .option('--commands', 'also print the exact host commands apply would run')
    .option('--verbose', 'show every host item of each change (links, qdiscs, classes, nft elements) instead of the file-level summary')
    .option('--detailed-exitcode', 'exit 0 when there is nothing to do, 2 when there are changes, 1 on error')
    .option('--out <planfile>', 'save the plan, with a fingerprint of the host state it was computed from, for `provium apply PLANFILE`')
    .option('--target <name>', 'limit the plan to this node or bridge and what it depends on or what depends on it (repeatable; also -target)', collect, [])
    .option('--replace <address>', 'force a replace of the object at this plan address, e.g. node.v1 (repeatable; also -replace)', collect, [])
    .action(async (file: string, o: FileOpts & { json?: boolean; commands?: boolean; verbose?: boolean; detailedExitcode?: boolean; out?: string; target: string[]; replace: string[] }) => {
      const { t, r } = load(file, o, 'plan', o.json === true);
      requireRoot();
      const ctx: HostContext = { ...hostCtx(globals(), t.lab), targets: o.target, replace: o.replace };
      if (t.hosts) {
        if (o.target.length) throw new ProviumError('--target is not supported for a file with hosts: yet');
        return hostsPlan(t, ctx.hostNetns, { ...o, sources: planSources(r), variables: r.vars }, await hostsIo(globals(), true));
      }
      const runner = new HostRunner();
      const planned = await planFor(t, ctx, runner);
      const { plan } = planned;
      if (o.json) printJson({ ...planJson(plan), files: r.files.map((f) => f.name) });
      else process.stdout.write(mergedLine(r) + planText(plan, t, planned.observation.state, o, useColor(globals())));
      if (o.out && plan.errors.length === 0) {
        const saved: PlanFile = {
          format_version: PLAN_FORMAT, kind: PLAN_KIND, created: new Date().toISOString(), lab: t.lab,
          sources: planSources(r), variables: r.vars, options: { targets: o.target, replace: o.replace }, host_netns: ctx.hostNetns ?? null,
          fingerprint: fingerprint(planned.observation), plan: planJson(plan), invocations: plan.invocations,
        };
        writePlanFile(o.out, saved);
        if (!o.json) process.stdout.write(`\nSaved the plan to ${o.out}. To perform exactly these actions, run: provium${ctx.hostNetns ? ` --netns ${ctx.hostNetns}` : ''} apply ${o.out}\n`);
      }
      if (plan.errors.length) throw new ExitError(1);
      if (o.detailedExitcode && plan.changes.length > 0) throw new ExitError(2);
    });

  const applyLike = (name: 'apply' | 'destroy') =>
    fileOptions(program
      .command(name)
      .description(name === 'apply' ? 'plan, then run exactly the commands that plan needs, then verify' : 'remove every host object the lab owns, and nothing else')
      .argument('<file>'))
      .option('--auto-approve', 'do not ask for confirmation (required without a terminal)')
      .option('--json', 'machine-readable result')
      .option('--commands', 'also print the exact host commands')
      .option('--verbose', 'show every host item of each change instead of the file-level summary')
      .option('--refresh-links', "re-send every VM NIC's recorded link state over QMP (QEMU cannot report it back)")
      .option('--no-rollback', 'when apply fails, keep the partial state for debugging instead of rolling back')
      .option('--target <name>', 'limit to this node or bridge and what it depends on or what depends on it (repeatable; also -target)', collect, [])
      .option('--replace <address>', 'force a replace of the object at this plan address (repeatable; also -replace)', collect, [])
      .action(async (file: string, o: FileOpts & { autoApprove?: boolean; json?: boolean; commands?: boolean; verbose?: boolean; refreshLinks?: boolean; rollback?: boolean; target: string[]; replace: string[] }) => {
        // apply takes a topology file or a plan file saved by `plan --out`.
        const saved = name === 'apply' && file !== '-' && isPlanFile(file) ? readPlanFile(file) : undefined;
        if (saved && (o.file.length > 0 || o.var.length > 0)) throw new ProviumError(`${file} is a saved plan: it holds every file and variable it was planned from; -f and --var cannot be added`);
        const loaded = saved ? undefined : load(file, o, name, o.json === true);
        const t = saved ? loadSaved(saved, file, o.json === true) : loaded!.t;
        const files = loaded ? loaded.r.files.map((f) => f.name) : saved!.sources.map((x) => x.name);
        requireRoot();
        const g = globals();
        if (saved && g.netns !== undefined && g.netns !== (saved.host_netns ?? undefined)) {
          throw new ProviumError(`${file} was planned for ${saved.host_netns ? `--netns ${saved.host_netns}` : 'the root namespace'}, not --netns ${g.netns}`);
        }
        if (saved && (o.target.length > 0 || o.replace.length > 0)) throw new ProviumError('a saved plan keeps the --target and --replace it was made with; give them to provium plan --out');
        const ctx: HostContext = {
          ...hostCtx(g, t.lab, { fallback: saved ? saved.host_netns : undefined, command: name }),
          refreshLinks: o.refreshLinks === true, targets: saved ? saved.options.targets : o.target, replace: saved ? saved.options.replace : o.replace,
        };
        if (saved && (saved.host_netns ?? undefined) !== ctx.hostNetns) {
          throw new ProviumError(`${file} was planned for ${saved.host_netns ? `--netns ${saved.host_netns}` : 'the root namespace'}, not ${ctx.hostNetns ? `--netns ${ctx.hostNetns}` : 'the root namespace'}`);
        }
        if (t.hosts) {
          if (o.target.length) throw new ProviumError('--target is not supported for a file with hosts: yet');
          return hostsApply(name, t, ctx.hostNetns, { ...o, saved: saved as Parameters<typeof hostsApply>[3]['saved'], savedPath: file }, await hostsIo(g, !!o.json));
        }
        const target = name === 'apply' ? t : emptyTopology(t.lab, t.file);
        const release = acquireLock(t.lab, `provium ${name}`, warn);
        const prog = await progress(!o.json);
        try {
          const runner = new HostRunner();
          prog.step('reading the host');
          const planned = await planFor(target, ctx, runner);
          prog.stop();
          const { plan } = planned;
          if (saved) {
            const now = fingerprint(planned.observation);
            if (now !== saved.fingerprint) {
              const n = plan.changes.length;
              throw new ProviumError(
                `the host changed since ${file} was planned (${saved.created}): the saved plan is stale and was not applied`,
                `state fingerprint ${saved.fingerprint.slice(0, 19)}… is now ${now.slice(0, 19)}… (drift by hand or another apply); a fresh plan has ${n} change(s): run provium plan again`,
              );
            }
            // provium runs only what it computes itself: the saved invocations must be exactly those.
            const diff = firstDifference(saved.invocations, plan.invocations);
            if (diff) {
              throw new ProviumError(
                `${file} does not hold the invocations provium computes from its topology and this host: it was not applied`,
                `${diff}. The plan file was changed after it was saved, or was made by another provium version: run provium plan again`,
              );
            }
          }
          if (!o.json) process.stdout.write((loaded ? mergedLine(loaded.r) : '') + planText(plan, t, planned.observation.state, o, useColor(g)));
          if (plan.errors.length) {
            if (o.json) printJson({ ...planJson(plan), files, applied: false });
            throw new ExitError(1);
          }
          if (plan.changes.length > 0) {
            if (!o.autoApprove && !saved) {
              if (!process.stdin.isTTY) throw new ProviumError(`${name} needs --auto-approve when not run from a terminal`);
              if (!(await confirm(`\nDo you want to perform these actions? Only 'yes' will be accepted: `))) {
                process.stdout.write(`${name} cancelled.\n`);
                throw new ExitError(1);
              }
            }
            const t0 = performance.now();
            const doc = o.json ? deferredPlanJson(plan) : undefined;
            const ran = await applyPlan(target, planned, ctx, runner, {
              // A failed destroy is not undone: what is left is removed by running destroy again.
              rollback: name === 'apply' && o.rollback !== false,
              onStep: (inv) => {
                prog.step(`${inv.label}: ${inv.argv.join(' ')}`);
                // Not while `netns del` runs (a teardown's first step): then the kernel's
                // cleanup, which the next step waits for, leaves the main thread idle.
                if (inv.label !== 'delete node namespaces') doc?.start();
              },
              onProcesses: (ns, pids) => process.stderr.write(`ending ${pids.length} process(es) still running in ${ns} (pid ${pids.join(', ')}): SIGTERM, then SIGKILL after 2 s\n`),
            });
            prog.stop();
            const s = summary(plan);
            if (o.json) {
              doc!.print({ files, applied: true, host_commands: ran, seconds: Math.round(performance.now() - t0) / 1000 });
            } else {
              process.stdout.write(`\n${name === 'apply' ? 'Apply' : 'Destroy'} complete! Resources: ${s.add} added, ${s.change} changed, ${s.destroy} destroyed (${ran} host command invocations, ${((performance.now() - t0) / 1000).toFixed(2)} s, verified).\n`);
            }
          } else if (o.json) {
            printJson({ ...planJson(plan), files, applied: true, host_commands: 0 });
          }
          if (name === 'destroy') recordDestroyed(t.lab, planned, ctx);
          else recordApplied(t, planned, ctx);
        } finally {
          prog.stop();
          release();
        }
      });
  applyLike('apply');
  applyLike('destroy');

  fileOptions(program
    .command('exec')
    .description('run a command inside a netns node')
    .argument('<file>')
    .argument('<node>')
    .argument('<cmd...>'))
    .action(async (file: string, node: string, cmd: string[], o: FileOpts) => {
      const { t } = load(file, o, 'exec');
      // Node namespaces are named globally; a --netns given must still be the lab's.
      if (globals().netns !== undefined) hostCtx(globals(), t.lab, { quiet: true });
      const n = t.nodes[node];
      if (!n) throw new ProviumError(`unknown node ${JSON.stringify(node)} in lab ${t.lab}`, `nodes: ${Object.keys(t.nodes).join(', ')}`);
      if (n.kind !== 'netns' && n.kind !== 'router') throw new ProviumError(`node ${node} is a ${n.kind} node; exec runs commands in netns nodes and routers`);
      if (t.hosts && !t.hosts[n.host!]?.local) throw new ProviumError(`node ${node} runs on host ${n.host}, not on this machine`, `run it there: ip netns exec ${nodeNetns(t.lab, node)} ...`);
      const ns = nodeNetns(t.lab, node);
      if (!existsSync(`/run/netns/${ns}`)) throw new ProviumError(`node ${node} is not running (no namespace ${ns}); run provium apply first`);
      const code = await runInNode(ns, cmd);
      if (code !== 0) throw new ExitError(code);
    });

  fileOptions(program
    .command('addr')
    .description("a node's address for scripts, from the file alone: IPv4 on BRIDGE (default: its first bridge, eth0)")
    .argument('<file>')
    .argument('<node>')
    .argument('[bridge]')
    .option('-6, --ipv6', 'the IPv6 address (bridges with subnet6)')
    .option('--cidr', 'with the prefix length (10.40.0.36/24)'))
    .action((file: string, node: string, bridge: string | undefined, o: FileOpts & { ipv6?: boolean; cidr?: boolean }) => {
      const { t } = load(file, o, 'addr');
      process.stdout.write(nodeAddress(t, node, bridge, { six: o.ipv6, cidr: o.cidr }) + '\n');
    });

  program
    .command('ls')
    .description('the labs on this host: name, file, host namespace, when applied, object counts')
    .option('--json', 'machine-readable output (format_version 1)')
    .action((o: { json?: boolean }) => {
      const labs = listLabs(warn);
      if (o.json) printJson(lsJson(labs));
      else process.stdout.write(renderLs(labs, { color: useColor(globals()) }));
    });

  fileOptions(program
    .command('show')
    .description('what the host has for this lab, by object, and drift against the file')
    .argument('<file>')
    .option('--json', 'machine-readable output'))
    .action(async (file: string, o: FileOpts & { json?: boolean }) => {
      const { t } = load(file, o, 'show', o.json === true);
      requireRoot();
      if (t.hosts) throw new ProviumError('show is not supported for a file with hosts: yet', 'provium plan FILE shows the drift of every host');
      const ctx = hostCtx(globals(), t.lab);
      const runner = new HostRunner();
      const planned = await planFor(t, ctx, runner);
      const [counters, drops] = await Promise.all([readCounters(planned.observation.state, ctx, runner), readDropCounters(t.lab, ctx, runner)]);
      if (o.json) printJson(showJson(t, planned, counters, drops));
      else process.stdout.write(renderShow(t, planned, { color: useColor(globals()) }, counters, drops));
    });

  fileOptions(program
    .command('capture')
    .description("tcpdump on a bridge (BRIDGE) or on the host side of a node's NIC (NODE.NIC, e.g. a.eth0)")
    .argument('<file>')
    .argument('<target>', 'a bridge name, or NODE.NIC')
    .option('-w, --write <pcap>', 'write a pcap file (- for stdout) instead of printing decoded packets')
    .option('--duration <time>', 'stop after this time: 500ms, 5s, 2m')
    .option('--count <n>', 'stop after n packets')
    .option('--filter <expr>', 'BPF (pcap-filter) expression, e.g. "icmp or arp"'))
    .action(async (file: string, target: string, o: CaptureOptions & FileOpts) => {
      const { t } = load(file, o, 'capture');
      if (t.hosts) throw new ProviumError('capture is not supported for a file with hosts: yet', 'run tcpdump on the host that holds the bridge or node');
      await captureCommand(t, target, o, hostCtx(globals(), t.lab).hostNetns);
    });

  fileOptions(program
    .command('probe')
    .description('send real traffic between the lab\'s nodes and compare, per declared property, what arrives with what the file says (exit 1 on any FAIL)')
    .argument('<file>')
    .option('--only <pairs>', 'only these pairs: comma-separated a>b (one direction), a<>b (both), a (every pair with a), each optionally BRIDGE:...')
    .option('--quick', 'reachability only (partitions, isolation, link state, routes, routers, uplink): a few seconds')
    .option('--json', 'machine-readable result (format_version 1)'))
    .action(async (file: string, o: FileOpts & ProbeCliOptions) => {
      const { t } = load(file, o, 'probe', o.json === true);
      requireRoot();
      if (t.hosts) throw new ProviumError('probe is not supported for a file with hosts: yet', 'its traffic agents run on this machine only');
      const g = globals();
      const ok = await probeCommand(t, o, hostCtx(g, t.lab), { color: useColor(g), json: (doc) => printJson(doc) });
      if (!ok) throw new ExitError(1);
    });


  fileOptions(program
    .command('graph')
    .description('the topology as a picture (Mermaid flowchart or Graphviz DOT), from the file alone; no host access')
    .argument('<file>')
    .option('--format <format>', 'mermaid (renders on GitHub in a ```mermaid block) or dot (Graphviz)', 'mermaid'))
    .action((file: string, o: FileOpts & { format: string }) => {
      if (o.format !== 'mermaid' && o.format !== 'dot') throw new ProviumError(`--format: unknown format ${JSON.stringify(o.format)}`, 'use --format mermaid or --format dot');
      const { t } = load(file, o, 'graph');
      process.stdout.write(o.format === 'dot' ? renderDot(t) : renderMermaid(t));
    });

  fileOptions(program
    .command('render')
    .description('the effective topology of FILE with its extends chain, -f overlays and variables, merged and checked (like docker compose config); no host access')
    .argument('<file>')
    .option('--json', 'JSON instead of YAML'))
    .action((file: string, o: FileOpts & { json?: boolean }) => {
      const { r } = load(file, o, 'render', o.json === true);
      const data = toData(withoutKeys(r.merged!, ['steps']));
      if (o.json) printJson(data);
      else process.stdout.write(`# provium render: ${r.files.map((f) => f.name).join(' + ')}${Object.keys(r.vars).length ? ` (variables: ${Object.keys(r.vars).sort().join(', ')})` : ''}\n${yamlStringify(data, { lineWidth: 0 })}`);
    });

  fileOptions(program
    .command('run')
    .description('run a scenario: its steps (apply, wait, exec, until, repeat) in order on the lab, holding its lock; on a failed step or SIGINT/SIGTERM restore the base (or destroy with --destroy-after) and exit 1')
    .argument('<scenario>')
    .option('--json', 'one JSON object per event (step, start, committed, end, outcome)')
    .option('--destroy-after', 'destroy the lab at the end (after success or failure) instead of leaving it or restoring the base'))
    .action(async (file: string, o: FileOpts & { json?: boolean; destroyAfter?: boolean }) => {
      const { sources, opts } = sourcesOf(file, o);
      // Everything is checked before the host is touched.
      const c = checkScenario(sources, opts);
      if (!c.scenario) throw new InputError(c.diagnostics);
      requireRoot();
      const g = globals();
      const ctx = hostCtx(g, c.scenario.base.lab, { command: 'run' });
      const ctl = new AbortController();
      let stopping = false;
      const onSignal = (sig: NodeJS.Signals) => {
        if (!stopping) {
          stopping = true;
          if (!o.json) process.stderr.write(`\n${sig}: stopping the run; ${o.destroyAfter ? 'destroying the lab' : 'restoring the base lab'} (this takes a moment)\n`);
          ctl.abort(sig);
        } else if (!o.json) process.stderr.write(`${sig}: already stopping, please wait\n`);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const ok = await runScenario(c.scenario, {
          hostNetns: ctx.hostNetns, destroyAfter: o.destroyAfter, signal: ctl.signal, command: `provium run ${file}`,
          onWarning: warn,
          onProcesses: (ns, pids) => process.stderr.write(`ending ${pids.length} process(es) still running in ${ns} (pid ${pids.join(', ')}): SIGTERM, then SIGKILL after 2 s\n`),
          onEvent: (e: RunEvent) => process.stdout.write(o.json ? JSON.stringify(e) + '\n' : renderEvent(e)),
        });
        if (!ok) throw new ExitError(1);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });

  fileOptions(program
    .command('doctor')
    .description('what this host (or, given a FILE with hosts:, every host of that lab) can run: root, tools, kernel features, namespaces, KVM; what each missing piece disables, and the fix. Changes nothing')
    .argument('[file]', 'a lab file with hosts: check every host of it, over SSH')
    .option('--json', 'machine-readable output (format_version 1)'))
    .action(async (file: string | undefined, o: FileOpts & { json?: boolean }) => {
      const t = file ? load(file, o, 'doctor', o.json === true).t : undefined;
      if (t?.hosts) {
        const hosts = await openHosts(t, globals().netns);
        try {
          const all = await doctorHosts(hosts);
          if (o.json) printJson({ format_version: '1', hosts: Object.fromEntries(all.map((x) => [x.host, doctorJson(x.report)])) });
          else for (const x of all) process.stdout.write(`host ${x.host}:\n${renderDoctor(x.report, { color: useColor(globals()) }).replace(/^/gm, '  ')}`);
          if (!all.every((x) => doctorReady(x.report))) throw new ExitError(1);
        } finally {
          await closeHosts(hosts);
        }
        return;
      }
      const report = await runDoctor();
      if (o.json) printJson(doctorJson(report));
      else process.stdout.write(renderDoctor(report, { color: useColor(globals()) }));
      if (!doctorReady(report)) throw new ExitError(1);
    });

  return program;
}

/** Writes diagnostic lines to stderr in a few large writes (one write per line costs a system call each: 180,000 lines took 0.7 s). */
function writeDiagnostics(lines: string[]): void {
  for (let i = 0; i < lines.length; i += 4096) process.stderr.write(lines.slice(i, i + 4096).join('\n') + '\n');
}

/** Accumulates a repeatable option's values. */
function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** terraform's spellings: -target X / -target=X / -replace X become --target / --replace. */
export function terraformFlags(argv: string[]): string[] {
  return argv.map((a) => a.replace(/^-(target|replace)(=|$)/, '--$1$2'));
}

/**
 * Build time only (scripts/bundle.mjs, which then saves V8's code cache of the bundle):
 * plans each topology file against no host (its own desired state as found, then an empty
 * host, then a destroy) and renders the plans, so the cache holds the planner's and the
 * renderers' compiled functions, not only those of start-up. Touches no host and no file.
 */
export function warmUp(files: string[]): void {
  const facts = { features: { netem: true, htb: true, nftBridge: true, tun: true }, featureSource: {}, conflicts: [], defaultRouteDev: 'eth0', kvmUsable: true, qemuBinary: '/usr/bin/qemu-system-x86_64', dnsmasqBinary: '/usr/sbin/dnsmasq', conntrackBinary: '/usr/sbin/conntrack' };
  for (const f of files) {
    const t = checkSources([{ name: f }]).topology;
    if (!t || t.hosts) continue;
    const ctx: HostContext = { stateDir: `/nonexistent/${t.lab}` };
    const desired = realize(t, { defaultRouteDev: 'eth0', kvmUsable: true, stateDir: ctx.stateDir });
    for (const [target, observed] of [[t, desired], [t, emptyState()], [emptyTopology(t.lab, t.file), desired]] as const) {
      const plan = computePlan(target, observed, facts, ctx);
      planText(plan, target, observed, {}, false);
      planText(plan, target, observed, { verbose: true, commands: true }, false);
      JSON.stringify(planJson(plan));
    }
  }
}

export async function main(argv0: string[]): Promise<number> {
  const argv = terraformFlags(argv0);
  const program = buildProgram();
  const err = (s: string) => process.stderr.write(s + '\n');
  const c = new Chalk({ level: process.stderr.isTTY && !process.env.NO_COLOR ? 1 : 0 });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof ExitError) return e.code;
    if (e instanceof HostsExit) return e.code;
    if ((e as { code?: string }).code?.startsWith?.('commander.')) {
      const ce = e as { exitCode: number; code: string };
      return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' ? 0 : 1;
    }
    if (e instanceof InputError) {
      writeDiagnostics(e.diagnostics.map((d) => c.red(formatDiagnostic(d))));
      return 1;
    }
    if (e instanceof CommandError) {
      err(c.red(`error: a host command failed (exit ${e.result.exitCode}): ${e.result.argv.join(' ')}`));
      if (e.stdin) err(c.dim(e.stdin.trimEnd().split('\n').map((l) => `    ${l}`).join('\n')));
      err(e.result.stderr.trim());
      return 1;
    }
    if (e instanceof ApplyError) {
      err(c.red(`error: ${e.message}`));
      if (e.cause instanceof CommandError) {
        const r = e.cause.result;
        err(`  command: ${r.argv.join(' ')}`);
        if (e.cause.stdin) err(c.dim(e.cause.stdin.trimEnd().split('\n').map((l) => `      ${l}`).join('\n')));
        err(`  exit code: ${r.exitCode}`);
        err(`  stderr: ${r.stderr.trim()}`);
      }
      if (e.hint) err(e.rolledBack ? c.green(e.hint) : c.yellow(e.hint));
      return 1;
    }
    if (e instanceof ProviumError) {
      err(c.red(`error: ${e.message}`));
      if (e.hint) err(`hint: ${e.hint}`);
      return 1;
    }
    err(c.red(`internal error: ${(e as Error).stack ?? String(e)}`));
    return 1;
  }
}
