// Redis's MONITOR for tests that count round trips: every command the server runs, with the name of the connection
// that sent it (CLIENT LIST, read when a command comes from an address not seen yet) or "lua" for a command a script
// ran. A round trip is one command a client sent, or one MULTI ... EXEC block (ioredis writes the block at once and
// reads the replies together).
import { Redis } from 'ioredis';

export interface Command {
  /** The sending connection's name (lid:worker, ...), its address when it has none, or "lua". */
  client: string;
  args: string[];
}

export interface RedisMonitor {
  commands: Command[];
  /**
   * The round trips of the clients `from` accepts among `commands`: commands outside MULTI ... EXEC, plus one per
   * block; only those `about` accepts (any command of a block counts for the block).
   */
  roundTrips(commands: Command[], from: (client: string) => boolean, about: (args: string[]) => boolean): number;
  stop(): Promise<void>;
}

export async function monitorRedis(url: string): Promise<RedisMonitor> {
  const admin = new Redis(url);
  const names = new Map<string, string>();
  const readNames = async () => {
    for (const line of ((await admin.client('LIST')) as string).split('\n')) {
      const addr = /\baddr=(\S+)/.exec(line)?.[1];
      if (addr) names.set(addr, /\bname=(\S*)/.exec(line)?.[1] || addr);
    }
  };
  await readNames();
  const raw: { source: string; args: string[] }[] = [];
  const base = new Redis(url);
  const monitor = await base.monitor();
  monitor.on('monitor', (_time: string, args: string[], source: string) => raw.push({ source, args }));
  const commands: Command[] = [];
  return {
    commands,
    roundTrips(list, from, about) {
      let trips = 0;
      const open = new Map<string, boolean>(); // client -> whether its open block was about it
      for (const { client, args } of list) {
        if (!from(client)) continue;
        const verb = args[0]!.toLowerCase();
        if (verb === 'multi') open.set(client, false);
        else if (verb === 'exec' && open.has(client)) {
          if (open.get(client)) trips++;
          open.delete(client);
        } else if (open.has(client)) open.set(client, open.get(client)! || about(args));
        else if (about(args)) trips++;
      }
      return trips;
    },
    async stop() {
      await new Promise((resolve) => setTimeout(resolve, 100)); // the last commands' echoes
      monitor.disconnect();
      base.disconnect();
      if (raw.some(({ source }) => source !== 'lua' && !names.has(source))) await readNames();
      commands.push(
        ...raw.map(({ source, args }) => ({ client: source === 'lua' ? 'lua' : (names.get(source) ?? source), args })),
      );
      admin.disconnect();
    },
  };
}
