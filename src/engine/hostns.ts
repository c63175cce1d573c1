/**
 * Which host network namespace a lab's host side lives in, for a command or a `Lab`:
 * the one asked for (`--netns`, `Lab.up(..., { netns })`), else the one recorded when
 * the lab was applied (state.json), else the root namespace. Shared by the CLI and the
 * library so that both refuse the same mistakes: a namespace other than the recorded
 * one is refused (planning a live lab in the wrong namespace would build it a second
 * time there), unless the recorded namespace no longer exists.
 */
import { existsSync } from 'node:fs';
import { ProviumError } from '../model/diagnostics.js';
import { readRecord, stateFs, type Warn } from '../apply/statedir.js';

/** The namespace chosen, and a note to show the user when it was not the one given. */
export interface HostNsChoice {
  /** The host namespace's name; undefined for the root namespace. */
  netns?: string;
  /** Why a namespace other than the one given is used (CLI: printed on stderr). */
  note?: string;
}

/** Namespace names provium accepts (what `ip netns add` accepts, without path separators). */
const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Chooses the host namespace of lab `lab`. `given`: the namespace asked for (undefined:
 * none); `fallback`: a saved plan's namespace (null: the root namespace); `destroying`:
 * a destroy, which goes on from the root namespace when the recorded one is gone;
 * `option`: how the caller names the option in messages (`--netns`, `netns`).
 * Throws ProviumError when the name is invalid, the namespace does not exist, or it is
 * not the one the lab was applied in. Warnings (the recorded namespace is gone) go to `warn`.
 */
export function resolveHostNetns(
  lab: string,
  given: string | undefined,
  opts: { fallback?: string | null; destroying?: boolean; option?: string; warn?: Warn } = {},
): HostNsChoice {
  const option = opts.option ?? '--netns';
  const warn = opts.warn ?? (() => {});
  const rec = readRecord(lab, warn);
  const recorded = rec.hostNetns === undefined ? undefined : { ns: rec.hostNetns ?? undefined };
  const where = (ns: string | undefined) => (ns ? `namespace ${ns}` : 'the root namespace');
  let netns = given;
  let note: string | undefined;
  if (netns === undefined && opts.fallback !== undefined && opts.fallback !== null) {
    netns = opts.fallback;
    note = `the saved plan was made for namespace ${netns}: using ${option} ${netns}`;
  }
  if (recorded && netns === undefined && recorded.ns !== undefined && opts.fallback === undefined) {
    netns = recorded.ns;
    if (!existsSync(`/run/netns/${netns}`) && opts.destroying) {
      warn(`lab ${lab} was applied in namespace ${netns}, which no longer exists (its host side went with it): destroying what is left from the root namespace`);
      netns = undefined;
    } else {
      note = `lab ${lab} lives in namespace ${netns} (recorded in ${stateFs().path(`${lab}/state.json`)}): using ${option} ${netns}`;
    }
  } else if (recorded && netns !== recorded.ns) {
    if (recorded.ns !== undefined && !existsSync(`/run/netns/${recorded.ns}`)) {
      warn(`lab ${lab} was applied in namespace ${recorded.ns}, which no longer exists: using ${where(netns)}`);
    } else {
      throw new ProviumError(
        `lab ${lab} lives in ${where(recorded.ns)} (recorded when it was applied), not in ${where(netns)}`,
        `run it ${recorded.ns ? `with ${option} ${recorded.ns} or without ${option}` : `without ${option}`}; to move the lab, destroy it first`,
      );
    }
  }
  if (netns !== undefined) {
    if (!NETNS_NAME.test(netns)) throw new ProviumError(`${option}: invalid namespace name ${JSON.stringify(netns)}`);
    if (!existsSync(`/run/netns/${netns}`)) {
      throw new ProviumError(
        `${given !== undefined ? `${option}: ` : ''}network namespace ${netns} does not exist`,
        given === undefined && recorded ? `lab ${lab} was applied there: create it again (ip netns add ${netns}) to apply there, or run provium destroy to remove what is left` : `create it with: ip netns add ${netns}`,
      );
    }
  }
  return { netns, ...(note ? { note } : {}) };
}
