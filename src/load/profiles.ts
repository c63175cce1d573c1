/**
 * Named link conditions for `profile:` on an impairment, with the values patchbay
 * defines (one-way): latency and jitter in ms, drop in percent, bandwidth in bits/s.
 * Fields given explicitly in the same impairment override the profile's.
 */
export interface Profile {
  latency_ms?: number;
  jitter_ms?: number;
  drop_pct?: number;
  bandwidth_bps?: number;
}

export const PROFILES: Record<string, Profile> = {
  lan: {},
  wifi: { latency_ms: 5, jitter_ms: 2, drop_pct: 0.1 },
  'wifi-bad': { latency_ms: 40, jitter_ms: 15, drop_pct: 2, bandwidth_bps: 20_000_000 },
  'mobile-4g': { latency_ms: 25, jitter_ms: 8, drop_pct: 0.5 },
  'mobile-3g': { latency_ms: 100, jitter_ms: 30, drop_pct: 2, bandwidth_bps: 2_000_000 },
  satellite: { latency_ms: 40, jitter_ms: 7, drop_pct: 1 },
  'satellite-geo': { latency_ms: 300, jitter_ms: 20, drop_pct: 0.5, bandwidth_bps: 25_000_000 },
};
