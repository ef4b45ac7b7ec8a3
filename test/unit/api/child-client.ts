/**
 * Run by socket.test.ts as another uid: requests with agent/client, printed as JSON on stdout.
 *   child-client.ts SOCKET METHOD PATH [BODY_JSON]   one request
 *   child-client.ts SOCKET --hold H --probes P        the per-uid connection cap, step by step (below)
 */
import { createConnection, type Socket } from 'node:net';
import { request, ClientError } from '../../../agent/client/client.js';

const [socket, method, path, body] = process.argv.slice(2);
if (socket === undefined || method === undefined || path === undefined) {
  process.stderr.write('usage: child-client.ts SOCKET METHOD PATH [BODY_JSON] | SOCKET --hold H --probes P\n');
  process.exit(2);
}

async function one(m: string, p: string, b?: string): Promise<unknown> {
  try {
    // generous: a busy machine must not turn an answer into a "dropped" connection
    return await request(socket!, m as 'GET', p, b === undefined ? undefined : JSON.parse(b), { timeoutMs: 30_000 });
  } catch (err) {
    if (err instanceof ClientError) return { error: { kind: err.kind, errno: err.errno, message: err.message } };
    throw err;
  }
}

/** a connection that stays open and sends nothing; resolves once connected */
function hold(): Promise<{ conn: Socket; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const conn = createConnection(socket!);
    conn.once('error', reject);
    conn.on('close', () => {
      closed = true;
    });
    conn.once('connect', () => resolve({ conn, closed: () => closed }));
  });
}

/**
 * H idle connections, each connected before the next one starts; then P requests one after the other.
 * Unix stream connections are accepted in the order they were queued, so the server counts the held
 * ones before any probe, whatever the machine's load: with H at the cap, every probe must be dropped.
 * Then the held connections close, and requests are repeated until one is answered (the server's count
 * went down), for at most 30 s.
 */
async function capSteps(held: number, probes: number): Promise<unknown> {
  const conns = [];
  for (let i = 0; i < held; i++) conns.push(await hold());
  const probed = [];
  for (let i = 0; i < probes; i++) probed.push(await one('GET', '/v1/status'));
  const heldOpen = conns.filter((c) => !c.closed()).length;
  for (const c of conns) c.conn.destroy();
  const until = Date.now() + 30_000;
  let afterClose: unknown;
  let tries = 0;
  do {
    tries++;
    afterClose = await one('GET', '/v1/status');
    if (typeof afterClose === 'object' && afterClose !== null && 'status' in afterClose) break;
    await new Promise((r) => setTimeout(r, 50));
  } while (Date.now() < until);
  return { probed, heldOpen, afterClose, tries };
}

if (method === '--hold') {
  const probes = process.argv[5] === '--probes' ? Number(process.argv[6]) : NaN;
  if (!Number.isInteger(Number(path)) || !Number.isInteger(probes)) {
    process.stderr.write('usage: child-client.ts SOCKET --hold H --probes P\n');
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify(await capSteps(Number(path), probes))}\n`);
} else {
  process.stdout.write(`${JSON.stringify(await one(method, path, body))}\n`);
}
