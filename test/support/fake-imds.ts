import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Imitates IMDSv2: a token from PUT /latest/api/token, 401 on any GET without a current one. */
export class FakeImds {
  readonly server: Server;
  metadata = new Map<string, string>();
  tokensIssued = 0;
  unauthorized = 0;
  #valid = new Set<string>();

  constructor() {
    this.server = createServer((req, res) => {
      if (req.method === 'PUT' && req.url === '/latest/api/token') {
        const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
        if (!(ttl >= 1 && ttl <= 21_600)) return void res.writeHead(400).end();
        this.tokensIssued += 1;
        const token = `token-${this.tokensIssued}`;
        this.#valid.add(token);
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
      }
      const token = req.headers['x-aws-ec2-metadata-token'];
      if (req.method !== 'GET' || typeof token !== 'string' || !this.#valid.has(token)) {
        this.unauthorized += 1;
        return void res.writeHead(401).end();
      }
      const value = this.metadata.get((req.url ?? '').replace(/^\/latest\//, ''));
      if (value === undefined) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain' }).end(value);
    });
  }

  expireTokens(): void {
    this.#valid.clear();
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}
