/**
 * The plan as data (no rendering, no host access). A Plan is a list of Changes,
 * one per user-level address, each made of the item-level changes that realize it.
 */
import type { Diagnostic } from '../model/diagnostics.js';
import type { Item } from './items.js';

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
}

/** A host command invocation. `stdin` carries batch lines (ip/tc -batch -) or the nft transaction. */
export interface Invocation {
  argv: string[];
  stdin?: string;
  /** What it does, for logs: "host links", "node a", "nft transaction". */
  label: string;
}

export interface Plan {
  lab: string;
  changes: Change[];
  /** Problems that forbid applying (conflicts, missing kernel features). */
  errors: Diagnostic[];
  /** The exact host commands `apply` will run, in order. */
  invocations: Invocation[];
}
