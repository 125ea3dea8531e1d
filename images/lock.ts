// A lock shared by the processes of one machine that use the same store, with crash detection that does not wait
// for a timeout: the lock is a directory holding its owner's process instance (common/process-instance.ts),
// created atomically by renaming a prepared directory into place; a waiter that finds the owner dead breaks the
// lock at once. (Time-based staleness, as lockfile libraries use, would leave a crashed unpack blocking every other
// worker for tens of seconds.)
import fs from 'node:fs';
import { currentInstanceName, isInstanceDead } from '../common/process-instance.js';

const instance = currentInstanceName();
let counter = 0;

function tryTake(lockDir: string): boolean {
  const prepared = `${lockDir}.${instance}-${++counter}`;
  fs.mkdirSync(prepared);
  fs.writeFileSync(`${prepared}/owner`, instance);
  try {
    fs.renameSync(prepared, lockDir);
    return true;
  } catch (e) {
    fs.rmSync(prepared, { recursive: true, force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw e;
  }
}

function breakIfOwnerDead(lockDir: string): void {
  let owner: string;
  try {
    owner = fs.readFileSync(`${lockDir}/owner`, 'utf8');
  } catch {
    return; // released meanwhile
  }
  if (!isInstanceDead(owner)) return;
  const grave = `${lockDir}.dead-${instance}-${++counter}`;
  try {
    fs.renameSync(lockDir, grave); // only one waiter wins the rename; the others see the lock gone or retaken
    fs.rmSync(grave, { recursive: true, force: true });
  } catch {
    /* another waiter broke it first */
  }
}

/** Runs `fn` while holding the lock at `lockDir`, waiting for a live holder and breaking a dead one's. */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  for (let wait = 5; !tryTake(lockDir); wait = Math.min(wait * 2, 100)) {
    breakIfOwnerDead(lockDir);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}
