// Uses the library's one-call API the way a small script would, and exits by itself: the test checks that the
// process ends and leaves nothing behind.
import { run } from '../runtime/index.js';

const result = await run({ rootfs: process.argv[2]!, argv: ['sh', '-c', 'echo hello from $(hostname)'] });
process.stdout.write(`${result.status} ${Buffer.from(result.stdout).toString()}`);
