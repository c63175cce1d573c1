/**
 * Whether a process is running: it exists and is not a zombie. A daemon provium ends
 * (QEMU, dnsmasq) is reparented to PID 1; where PID 1 reaps slowly (containers,
 * sandboxes) an ended process stays a zombie for a while, and `kill(pid, 0)` still
 * succeeds on it. /proc/<pid>/stat's third field is the state (Z = zombie).
 */
import { readFileSync } from 'node:fs';

export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
