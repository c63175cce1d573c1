/**
 * The plan as data (no rendering, no host access). A Plan is a list of Changes,
 * one per user-level address, each made of the item-level changes that realize it.
 */
import type { Diagnostic } from '../model/diagnostics.js';
import type { Item } from './items.js';
import type { VmNic, VmState } from '../model/state.js';

/** Terraform's closed set of actions: create `+`, update `~`, replace `-/+`, delete `-`. */
export type Action = 'create' | 'update' | 'replace' | 'delete';

/** One changed field: values as shown to the user (JSON-compatible). */
export interface FieldDiff {
  field: string;
  before: unknown;
  after: unknown;
}

/** A change of one host-level item. `before` is the observed item, `after` the desired one. */
export interface ItemChange {
  action: Action;
  key: string;
  before?: Item;
  after?: Item;
  fields: FieldDiff[];
  /** Why a replace (or forced re-create) happens: for explaining, never for deciding. */
  reason?: string;
  /** Its host object disappears with its parent's deletion: no command needed. */
  implied?: boolean;
}

/** A change of one user-level object (plan address), e.g. "bridge.lan.impairment[a>b]". */
export interface Change {
  address: string;
  action: Action;
  items: ItemChange[];
  /** The address these host objects were owned by before, when they move in place (a replugged attachment). */
  movedFrom?: string;
}

/** One QMP command, and what it changes in the VM's record (vm.json) when it succeeds. */
export interface QmpStep {
  execute: string;
  arguments?: Record<string, unknown>;
  record?: { op: 'nic-add'; nic: VmNic } | { op: 'nic-del'; tap: string } | { op: 'link'; tap: string; link: 'up' | 'down' };
  /** After device_del: wait for DEVICE_DELETED of this device id (the guest releases the NIC). */
  awaitDeleted?: string;
}

/**
 * A host command invocation (`argv`, with batch lines or the nft transaction on
 * `stdin`), or a VM action: `vmStart` runs argv (qemu -daemonize) after preparing the
 * VM's state directory; `vmStop` ends a VM (QMP quit, then SIGTERM, then SIGKILL) and
 * removes its files; `qmp` runs QMP steps over the VM's socket (argv is then only shown).
 */
export interface Invocation {
  argv: string[];
  stdin?: string;
  /** What it does, for logs: "host links", "node a", "nft transaction". */
  label: string;
  /** Consecutive invocations with the same value run concurrently (8 at a time), e.g. one per router. */
  parallel?: string;
  /** A node namespace batch whose output (after the writes) reads that namespace back. */
  readsBack?: string;
  /**
   * Files written before argv runs (atomically, under the state directory or
   * /etc/netns only, with that tree's modes: 0600 / 0644); argv ["write", path] when
   * that is all. Without `content`: a regular file provium made, created empty when
   * absent, for a program that opens it by name (dnsmasq's log and lease file).
   */
  writeFiles?: { path: string; content?: string }[];
  /** Files removed (and then these folders, when empty), under the state directory or /etc/netns only; argv ["remove", ...]. */
  removeFiles?: { files: string[]; dirsIfEmpty: string[] };
  /**
   * Forwarding sysctls of the lab's host namespace this invocation sets ([name, "0" | "1"],
   * the same as its argv `sysctl -q -w NAME=V...`): apply sets them through the netlink
   * helper when the runner has it (no process), else runs argv.
   */
  sysctl?: { netns?: string; values: [string, string][] };
  /** Ends the process named by a pidfile if its command line contains `match` (SIGTERM, then SIGKILL). */
  stopPidfile?: { pidfile: string; match: string };
  vmStart?: { node: string; dir: string; record: VmState };
  vmStop?: { node: string; dir: string; pid?: number; socket: string };
  qmp?: { node: string; dir: string; socket: string; steps: QmpStep[] };
}

export interface Plan {
  lab: string;
  changes: Change[];
  /** Problems that forbid applying (conflicts, missing kernel features). */
  errors: Diagnostic[];
  /** The exact host commands `apply` will run, in order. */
  invocations: Invocation[];
}
