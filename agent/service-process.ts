import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

/*
 * A stand-in for a real service in local mode: one process per service instance, started by the agent's
 * applier with `node --import tsx agent/service-process.ts --service … --version … --host … --port …`.
 * It answers every GET with who it is, so a request through a load balancer shows which member and which
 * version answered. It reports its port over IPC (or as a JSON line on stdout when run by hand) and ends
 * when its agent ends: the IPC channel closes however the agent dies, even by SIGKILL.
 */

const { values } = parseArgs({
  options: {
    service: { type: 'string' },
    version: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string', default: '0' },
  },
});
const { service, version, host: hostId } = values;
if (!service || !version || !hostId) {
  process.stderr.write('service-process: --service, --version and --host are required\n');
  process.exit(2);
}

const server = createServer((request, response) => {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' });
    response.end(JSON.stringify({ error: 'method not allowed' }));
    return;
  }
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(request.method === 'HEAD' ? undefined : JSON.stringify({ service, version, hostId }));
});

function shutdown(): void {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.channel) process.once('disconnect', shutdown);

server.on('error', (error) => {
  process.stderr.write(`service-process: ${error.message}\n`);
  process.exit(1);
});
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  if (process.send) process.send({ type: 'listening', port });
  else process.stdout.write(`${JSON.stringify({ type: 'listening', port })}\n`);
});
