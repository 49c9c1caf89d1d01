import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Starts `server` on 127.0.0.1 (port 0: a free one) and resolves with the port it got; a failure to bind
 * (the port taken) rejects instead of surfacing later as an unhandled 'error' event. Every local stand-in
 * (API, S3 notification bridge, SQS guard, CDN) listens this way.
 */
export function listenOnLoopback(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
