// The sandbox's first process as seen from the spawner thread: started with posix_spawn (no page-table copy, see
// syscalls.posixSpawn), its stdio on pipes read through net.Socket (non-blocking, on this thread's event loop), and
// its end noticed without SIGCHLD (Node gives worker threads no signal events): when PID 1 of a pid namespace
// exits, the kernel kills everything in it, so the output pipes close; the thread then reaps the init with
// waitpid(WNOHANG), polling with a short back-off for the moment between the pipes closing and the exit (or for a
// job that closed its own stdout and stderr early).
import net from 'node:net';
import os from 'node:os';
import * as sys from './syscalls.js';

export interface InitExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** performance.now() when the exit was seen */
  at: number;
}

const SIGNAL_NAMES = new Map(Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));
const REAP_BACKOFF_MS = [0, 1, 1, 2, 5, 10];
const FIRST_FREE_FD = 7; // the child's fds 0-6 are assigned below: sources must not collide with them

/** Moves fd above the child's fixed fds, so that one dup2 cannot overwrite another's source. */
function high(fd: number): number {
  if (fd >= FIRST_FREE_FD) return fd;
  const moved = sys.dupAtLeast(fd, FIRST_FREE_FD);
  sys.close(fd);
  return moved;
}

export class InitProcess {
  readonly stdin: net.Socket;
  readonly stdout: net.Socket;
  readonly stderr: net.Socket;
  readonly exited: Promise<InitExit>;
  private reaped = false;

  private constructor(
    readonly pid: number,
    stdinWrite: number,
    stdoutRead: number,
    stderrRead: number,
  ) {
    this.stdin = new net.Socket({ fd: stdinWrite, readable: false, writable: true });
    this.stdout = new net.Socket({ fd: stdoutRead, readable: true, writable: false });
    this.stderr = new net.Socket({ fd: stderrRead, readable: true, writable: false });
    this.stdin.on('error', () => {}); // the job may exit or close stdin without reading everything
    const closed = (s: net.Socket) => new Promise<void>((resolve) => s.once('close', () => resolve()));
    this.exited = Promise.all([closed(this.stdout), closed(this.stderr)]).then(() => this.reap());
  }

  /**
   * Spawns `file` with fd 0-2 on new pipes and `gate`, `status`, `spec`, `userns` as fds 3 to 6, with no arguments
   * and an empty environment (lid-init reads everything from its spec). Call it while the thread is inside the
   * sandbox's namespaces: the child inherits them.
   */
  static spawn(file: string, gate: number, status: number, spec: number, userns: number): InitProcess {
    const pipes = [sys.pipe(), sys.pipe(), sys.pipe()].map(([r, w]) => [high(r), high(w)] as const);
    const [[stdinRead, stdinWrite], [stdoutRead, stdoutWrite], [stderrRead, stderrWrite]] = pipes as [
      readonly [number, number],
      readonly [number, number],
      readonly [number, number],
    ];
    // The caller keeps its fds: work on copies when they sit among the child's fixed numbers.
    const given = [gate, status, spec, userns];
    const copies = given.map((fd) => (fd >= FIRST_FREE_FD ? fd : sys.dupAtLeast(fd, FIRST_FREE_FD)));
    let pid: number;
    try {
      pid = sys.posixSpawn(file, [file], {}, [
        [stdinRead, 0],
        [stdoutWrite, 1],
        [stderrWrite, 2],
        ...copies.map((fd, i) => [fd, 3 + i] as [number, number]),
      ]);
    } catch (e) {
      for (const fd of [stdinWrite, stdoutRead, stderrRead]) sys.close(fd);
      throw e;
    } finally {
      for (const fd of [stdinRead, stdoutWrite, stderrWrite]) sys.close(fd);
      copies.forEach((fd, i) => fd !== given[i] && sys.close(fd));
    }
    return new InitProcess(pid, stdinWrite, stdoutRead, stderrRead);
  }

  /** SIGKILL to PID 1 of the sandbox's pid namespace ends every process in it. Safe until the init is reaped. */
  kill(): void {
    if (this.reaped) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      /* already a zombie: the reap will collect it */
    }
  }

  private async reap(): Promise<InitExit> {
    for (let attempt = 0; ; attempt++) {
      const status = sys.waitpidNoHang(this.pid);
      if (status) {
        this.reaped = true;
        const signal = status.signal === null ? null : (SIGNAL_NAMES.get(status.signal) ?? null);
        return { exitCode: status.exitCode, signal, at: performance.now() };
      }
      const delay = REAP_BACKOFF_MS[Math.min(attempt, REAP_BACKOFF_MS.length - 1)]!;
      await new Promise((resolve) => (delay === 0 ? setImmediate(resolve) : setTimeout(resolve, delay)));
    }
  }
}
