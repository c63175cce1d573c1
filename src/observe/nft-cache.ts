/**
 * The nftables part of an observation, kept between runs. `nft -j list ruleset` is the
 * slowest read of a big lab (a 200-node lab's ~4,000 set elements: ~0.5 MB of JSON,
 * 0.1-0.2 s), and the kernel says when it cannot have changed: every committed nftables
 * transaction in a network namespace bumps that namespace's ruleset generation, and a
 * namespace's cookie is never reused while the host runs. So, on the netlink path,
 * observe asks the helper for (generation, cookie) first; when both equal those stored
 * with the last reading of this lab's tables (by the same build of provium, for the same
 * table name and owner mark), that reading is the host's present state and `nft` is not
 * run. Anything else is a miss: nft runs and the new reading is stored.
 *
 * The generation is read before `nft` runs, so a transaction that commits in between
 * leaves a reading stored under an older generation, which the next run does not match.
 * Set elements the packet path adds (dynamic sets, timeouts) do not bump the generation;
 * provium's tables have none.
 *
 * File: <lab state dir>/nft-observed.json, written only when that directory exists (an
 * applied lab's), through the state directory's safe tree (host/safefs.ts: atomic, no
 * symbolic link followed); destroy removes it with the directory.
 */
import { buildId } from '../model/build.js';
import { treeOf } from '../apply/statedir.js';
import type { SafeFs } from '../host/safefs.js';
import type { OtherLabInet, toNft } from './parse.js';

/**
 * What observe keeps of `nft -j list ruleset`: the lab's tables and the same-named tables
 * it does not own (toNft), and the other labs' inet tables as far as forwarding goes.
 */
export type NftReading = ReturnType<typeof toNft> & { others: OtherLabInet[] };

/** The identity of a reading: the ruleset generation and namespace cookie, and what it was parsed for. */
export interface NftStamp {
  gen: number;
  cookie: string;
  table: string;
  owner: string;
}

interface Entry extends NftStamp {
  build: string;
  reading: NftReading;
}

const FILE = 'nft-observed.json';

/** The lab's state directory's safe tree and the cache file's path in it; undefined when the directory is not under the state root. */
function where(stateDir: string): { fs: SafeFs; rel: string; dir: string } | undefined {
  try {
    const { fs, rel } = treeOf(`${stateDir}/${FILE}`);
    return { fs, rel, dir: rel.slice(0, rel.lastIndexOf('/')) };
  } catch {
    return undefined;
  }
}

/** The stored reading when its stamp and build match, else undefined. `build`: the running build's id (tests pass one). */
export function readNftCache(stateDir: string | undefined, stamp: NftStamp, build = buildId()): NftReading | undefined {
  if (!stateDir || !build) return undefined;
  const w = where(stateDir);
  if (!w) return undefined;
  try {
    const text = w.fs.read(w.rel);
    if (text === undefined) return undefined;
    const e = JSON.parse(text) as Entry;
    const same = e.build === build && e.gen === stamp.gen && e.cookie === stamp.cookie && e.table === stamp.table && e.owner === stamp.owner;
    return same ? e.reading : undefined;
  } catch {
    return undefined;
  }
}

/** Stores a reading under its stamp when the lab's state directory exists. Never throws. */
export function writeNftCache(stateDir: string | undefined, stamp: NftStamp, reading: NftReading, build = buildId()): void {
  if (!stateDir || !build) return;
  const w = where(stateDir);
  if (!w) return;
  try {
    if (!w.dir || !w.fs.lstat(w.dir)?.isDirectory()) return; // not applied yet: plan does not create the lab's directory
    w.fs.write(w.rel, JSON.stringify({ build, ...stamp, reading } satisfies Entry));
  } catch {
    /* an unsafe or unwritable state directory: apply reports it; a cache is not worth failing a plan */
  }
}
