/**
 * provium as a library: `import { Lab } from 'provium'`.
 *
 * `Lab` drives a lab from test code (see docs/api.md): `Lab.up(file, opts)`, then
 * `partition`, `impair`, `link`, `apply`, `heal`, `plan`, `exec`, `until`, `address`,
 * and `down`. The errors it throws are exported for `instanceof` checks, with the types
 * of its arguments and results (Topology, Plan, Diagnostic, ...).
 */
export { Lab, type LabSource, type LabOptions, type LabChange, type LabExecResult, type LabUntilResult, type ExecOptions, type UntilOptions } from './api/lab.js';
export { reset, type Group, type PartitionSpec, type ImpairSpec, type Overlay } from './api/overlay.js';
export { InputError, ProviumError, LockError, formatDiagnostic, type Diagnostic, type LockHolder } from './model/diagnostics.js';
export { ConflictError } from './engine/session.js';
export { ApplyError } from './apply/index.js';
export { CommandError } from './host/runner.js';
export type { Topology, NodeSpec, BridgeSpec, AttachSpec, PartitionSpec as TopologyPartition, ImpairmentSpec, SourcePos } from './model/topology.js';
export type { Plan, Change, ItemChange, FieldDiff, Action, Invocation } from './plan/types.js';
