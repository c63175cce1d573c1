/**
 * The statistics and decision rules of `provium probe` (pure). Every rule is chosen so
 * that a correctly realized lab rarely FAILs (a false FAIL costs a user an afternoon),
 * while a broken realization (a missing drop element, a class at the wrong rate, a
 * missing netem qdisc) fails clearly.
 */

/** z for the drop test: two-sided 99.99 % (a correct pair fails about once in 10,000 tests). */
export const DROP_Z = 3.891;

/**
 * Wilson score interval for a binomial proportion: `k` successes out of `n` trials at
 * normal quantile `z`. Returns [low, high] as fractions (0..1). n = 0 gives [0, 1].
 */
export function wilson(k: number, n: number, z = DROP_Z): [number, number] {
  if (n <= 0) return [0, 1];
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return [k === 0 ? 0 : Math.max(0, centre - half), k === n ? 1 : Math.min(1, centre + half)];
}

/**
 * Drop decision: `lost` of `sent` datagrams. ok when the declared drop (percent) lies in
 * the 99.99 % Wilson interval of the measured loss, widened by 0.2 percentage points
 * absolute for what the host itself may lose (a busy machine drops the odd datagram).
 */
export function dropOk(lost: number, sent: number, declaredPct: number): { ok: boolean; lowPct: number; highPct: number; measuredPct: number } {
  const [lo, hi] = wilson(lost, sent);
  const slack = 0.2;
  const lowPct = lo * 100;
  const highPct = hi * 100;
  return { ok: declaredPct >= lowPct - slack && declaredPct <= highPct + slack, lowPct, highPct, measuredPct: sent ? (100 * lost) / sent : 0 };
}

/**
 * How many datagrams make a drop test decisive enough: about 30 expected losses at the
 * declared rate, between 1,000 and 5,000 (p = 0.1 % -> 5,000; 1 % -> 3,000; 5 % and more -> 1,000).
 */
export function dropSamples(pct: number): number {
  if (pct <= 0) return 1000;
  return Math.max(1000, Math.min(5000, Math.ceil(30 / (pct / 100))));
}

/**
 * Datagrams for a reachability test of a pair with drop `pct`: enough that a reachable
 * pair loses all of them with probability below 1e-6 (10 at least, 2,000 at most).
 */
export function reachSamples(pct: number): number {
  if (pct <= 0) return 10;
  if (pct >= 100) return 10;
  const p = pct / 100;
  return Math.max(10, Math.min(2000, Math.ceil(Math.log(1e-6) / Math.log(p))));
}

/** Rate tolerance: measured within 10 % of the declared bandwidth. */
export const RATE_TOLERANCE = 0.1;

export function rateOk(measuredBps: number, declaredBps: number): boolean {
  return Math.abs(measuredBps - declaredBps) <= RATE_TOLERANCE * declaredBps;
}

/**
 * Latency decision on the median one-way delay (ms): within [declared - max(0.5 ms, 2 %),
 * declared + max(2 ms, 5 %)]. The asymmetry: a path only adds delay (the host's own
 * scheduling, queueing), and netem never delivers early beyond its timer resolution.
 */
export function latencyBounds(declaredMs: number): [number, number] {
  return [declaredMs - Math.max(0.5, 0.02 * declaredMs), declaredMs + Math.max(2, 0.05 * declaredMs)];
}

/**
 * Jitter as netem realizes `delay D J` (no distribution table): delays uniform in
 * [D - J, D + J], whose standard deviation is J / sqrt(3). The estimate is sqrt(3) x the
 * measured standard deviation. ok within max(2 ms, 30 %) of the declared jitter (a
 * declared 0 allows up to 2 ms of the host's own variation: timers of a slow or virtual
 * machine fire late by a millisecond or so; a jitter left where none was declared is
 * larger than that).
 */
export function jitterEstimate(stdevMs: number): number {
  return Math.sqrt(3) * stdevMs;
}

export function jitterOk(estimateMs: number, declaredMs: number): boolean {
  return Math.abs(estimateMs - declaredMs) <= jitterTolerance(declaredMs);
}

/**
 * Jitter estimate that a few late samples do not move (ms): netem's uniform delay in
 * [D - J, D + J] has a median absolute deviation of J / 2, so J is 2 x the MAD of the
 * delays (or RTTs). Used where only one direction of an RTT has a declared jitter: the sum
 * of two uniform delays has no such simple relation. Why: a busy virtual machine fires the
 * odd netem timer a few ms late; over 100 RTTs two such samples raise the standard
 * deviation by ~1 ms (sqrt(3) x that: a jitter of ~2 ms where none was declared) but not
 * the MAD, while a jitter really left on a pair raises both. NaN for no samples.
 */
export function jitterFromMad(samples: number[]): number {
  if (samples.length === 0) return NaN;
  const m = median(samples);
  return 2 * median(samples.map((x) => Math.abs(x - m)));
}

/**
 * The same from a delay distribution's 5th and 95th percentiles (ms): for a uniform delay
 * in [D - J, D + J], p95 - p5 = 1.8 J.
 */
export function jitterFromPercentiles(p5Ms: number, p95Ms: number): number {
  return (p95Ms - p5Ms) / 1.8;
}

/** max(2 ms, 30 % of the declared jitter). */
export function jitterTolerance(declaredMs: number): number {
  return Math.max(2, 0.3 * declaredMs);
}

/**
 * Half-width added to the latency bounds for the sampling error of a median: 4 standard
 * errors, the median's being 1.2533 x sigma / sqrt(n) (sigma: the samples' standard
 * deviation, mostly the declared jitter of both directions for an RTT).
 */
export function medianSlack(stdevMs: number, n: number): number {
  return n > 0 ? (4 * 1.2533 * stdevMs) / Math.sqrt(n) : 0;
}

/** The `p`-quantile (0..1) of numbers, nearest rank as the agent's (NaN for none). */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
}

/** Median of numbers (NaN for none). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
