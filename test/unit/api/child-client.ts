/**
 * Run by socket.test.ts as another uid: one request with agent/client, printed as JSON on stdout.
 *   child-client.ts SOCKET METHOD PATH [BODY_JSON]
 *   child-client.ts SOCKET --hold N   open N connections at once, GET /v1/status on each, print the outcomes
 */
import { request, ClientError } from '../../../agent/client/client.js';

const [socket, method, path, body] = process.argv.slice(2);
if (socket === undefined || method === undefined || path === undefined) {
  process.stderr.write('usage: child-client.ts SOCKET METHOD PATH [BODY_JSON]\n');
  process.exit(2);
}

async function one(m: string, p: string, b?: string): Promise<unknown> {
  try {
    return await request(socket!, m as 'GET', p, b === undefined ? undefined : JSON.parse(b), { timeoutMs: 5000 });
  } catch (err) {
    if (err instanceof ClientError) return { error: { kind: err.kind, errno: err.errno, message: err.message } };
    throw err;
  }
}

if (method === '--hold') {
  const n = Number(path);
  const results = await Promise.all(Array.from({ length: n }, () => one('GET', '/v1/status')));
  process.stdout.write(`${JSON.stringify(results)}\n`);
} else {
  process.stdout.write(`${JSON.stringify(await one(method, path, body))}\n`);
}
