// A minimal RESP client for probing the embedded Redis: one connection, AUTH then one command, the answer, closed.
// A client library's reconnect logic and ready check would hide exactly what a probe wants to see (a server that
// is loading, refuses us, or is not there at all).
import net from 'node:net';

export interface ProbeAuth {
  user: string;
  password: string;
}

/**
 * One reply from `buf` at `at`: a status or error line as it is ("+OK", "-NOAUTH ..."), an integer as ":N", a bulk
 * string's payload (null for a nil), or undefined when the reply is not complete yet. Arrays are not needed here.
 */
function parseReply(buf: Buffer, at: number): { value: string | null; end: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const line = buf.subarray(at, eol).toString();
  if (!line.startsWith('$')) return { value: line, end: eol + 2 };
  const length = Number(line.slice(1));
  if (length < 0) return { value: null, end: eol + 2 };
  if (buf.length < eol + 2 + length + 2) return undefined;
  return { value: buf.subarray(eol + 2, eol + 2 + length).toString(), end: eol + 2 + length + 2 };
}

const encode = (args: string[]) =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

/**
 * Sends `args` to 127.0.0.1:port after AUTH (when given). Resolves the command's reply, AUTH's error reply when
 * AUTH fails ("-WRONGPASS ..."), or null when the server closed the connection without answering.
 */
export function probe(port: number, args: string[], auth: ProbeAuth | null, timeoutMs = 1000): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const conn = net.connect({ host: '127.0.0.1', port });
    const expected = auth ? 2 : 1;
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => conn.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const finish = (reply: string | null) => {
      clearTimeout(timer);
      conn.destroy();
      resolve(reply); // later calls are no-ops: a promise settles once
    };
    conn.on('connect', () => {
      // Pipelined: the server answers in order, so AUTH's reply comes first.
      conn.write((auth ? encode(['AUTH', auth.user, auth.password]) : '') + encode(args));
    });
    conn.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      const replies: (string | null)[] = [];
      for (let at = 0, next; replies.length < expected && (next = parseReply(received, at)); at = next.end) {
        replies.push(next.value);
      }
      if (auth && replies[0]?.startsWith('-')) finish(replies[0]);
      else if (replies.length === expected) finish(replies[expected - 1]!);
    });
    conn.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    conn.on('close', () => finish(null));
  });
}
