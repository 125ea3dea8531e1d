// Hostile: one tenant signals another. A pid namespace alone does not stop kill(0, sig) or kill(-pgid, sig): they
// reach every process of the sender's process group with the same uid, whatever pid namespace it is in. Lid's
// defences: every sandbox starts its own session (lid-init's setsid) and no two running sandboxes share a host uid
// (runtime/uid-slots.ts). The control runs the same attack between two processes that have neither defence, in
// separate pid namespaces, and the victim dies: the attack is real on this kernel.
import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { describePrivileged } from '../privileged.js';
import { useSandboxes } from '../sandbox-harness.js';

describePrivileged('hostile: one tenant signals another', () => {
  const h = useSandboxes();

  it.each([
    ['SIGKILL', '-9'],
    ['SIGSTOP', '-STOP'],
  ])('kill %s 0 and -1 in one sandbox do not reach a sandbox running beside it', async (_name, flag) => {
    const victim = h.run({ argv: ['sh', '-c', 'sleep 1.5; echo survived'], limits: { timeoutMs: 8000 } });
    await new Promise((r) => setTimeout(r, 200));
    const attacker = await h.run({
      argv: ['sh', '-c', `sleep 0.3; kill ${flag} 0; kill ${flag} -1; echo sent`],
      limits: { timeoutMs: 8000 },
    });
    expect(attacker.out).toBe('sent\n'); // the attack ran (its own PID 1 ignores what it sent itself)
    const v = await victim;
    expect({ status: v.status, out: v.out }).toEqual({ status: 'ok', out: 'survived\n' });
  });

  it('control: the same kill -9 0 reaches a neighbour in another pid namespace that shares its session and uid', () => {
    // setsid: a session and process group of their own, so the attack cannot touch the test runner.
    // The victim is watched by a root shell in its own pid namespace, which the attacker (uid 65534) cannot touch.
    const drop = 'setpriv --reuid=65534 --regid=65534 --clear-groups';
    const script = [
      `unshare --pid --fork sh -c '${drop} sleep 5; echo victim=$?' & victim=$!`,
      'sleep 0.3',
      `unshare --pid --fork ${drop} sh -c 'kill -9 0'`,
      'wait $victim',
    ].join('\n');
    const r = spawnSync('setsid', ['--wait', 'sh', '-c', script], { encoding: 'utf8', timeout: 15_000 });
    expect(r.stdout.trim()).toBe('victim=137'); // 128 + SIGKILL: killed from the other pid namespace
  });
});
