// A machine-wide mutual exclusion between the processes that share one data directory (two `lid` commands both
// starting the embedded Redis, two workers unpacking the same image layer). The lock is a directory holding one file, `held-by-<instance>`, that
// names its holder's process instance (common/process-instance.ts). It appears atomically because a fully prepared
// directory is renamed into place, so nobody ever sees a lock without its holder's name. A waiter that finds the
// holder dead breaks the lock at once instead of waiting out a timeout, so a crashed `lid` never blocks the next.
//
// Breaking is race-free because it is conditional on the name: a breaker unlinks `held-by-<dead one>` (which fails
// harmlessly if the lock has changed hands meanwhile), then removes the directory only if it is empty. A taker's
// rename replaces an empty directory, so a breaker that died half-way leaves nothing that blocks anyone.
import fs from 'node:fs';
import path from 'node:path';
import { currentInstanceName, isInstanceDead } from './process-instance.js';

const HELD_BY = 'held-by-';
const self = currentInstanceName();
let attempt = 0;

/** Tries once to create `lockDir` naming us as holder; false when someone else holds it. */
function tryAcquire(lockDir: string): boolean {
  const staging = `${lockDir}.take-${self}-${++attempt}`;
  fs.mkdirSync(path.dirname(lockDir), { recursive: true });
  fs.mkdirSync(staging);
  fs.writeFileSync(path.join(staging, HELD_BY + self), '');
  try {
    // rename(2) onto a non-empty directory fails, so of several contenders exactly one wins.
    fs.renameSync(staging, lockDir);
    return true;
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTEMPTY') return false;
    throw e;
  }
}

/** Removes `lockDir` if it is empty; a lock someone holds (or one already gone) is left as it is. */
function removeIfEmpty(lockDir: string): void {
  try {
    fs.rmdirSync(lockDir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT') throw e;
  }
}

/** Breaks the lock when its holder has died; a live holder's lock is never touched. */
function breakIfAbandoned(lockDir: string): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(lockDir);
  } catch {
    return; // released meanwhile
  }
  const holders = entries.filter((e) => e.startsWith(HELD_BY));
  for (const entry of holders) {
    if (!isInstanceDead(entry.slice(HELD_BY.length))) return;
    fs.rmSync(path.join(lockDir, entry), { force: true }); // another breaker may have been first
  }
  removeIfEmpty(lockDir);
}

/** Runs `fn` holding the lock at `lockDir`: waits while a live process holds it, breaks it if the holder died. */
export async function withDirLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  let pause = 5;
  while (!tryAcquire(lockDir)) {
    breakIfAbandoned(lockDir);
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 100);
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(path.join(lockDir, HELD_BY + self), { force: true });
    removeIfEmpty(lockDir);
  }
}
