import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LbProxy, parseMember, UPSTREAM_HEADER } from '../agent/lb-proxy.ts';

/** A real member: answers with its name, the path and method it saw, and the body it got. */
async function member(name: string, status = 200): Promise<{ endpoint: string; server: Server }> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      response.writeHead(status, { 'content-type': 'application/json', 'x-member': name });
      response.end(
        JSON.stringify({
          name,
          method: request.method,
          path: request.url,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { endpoint: `127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** A port nothing listens on: connecting to it is refused. */
async function closedEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

const servers: Server[] = [];
const proxies: LbProxy[] = [];

async function proxy(upstreams: Record<string, string[]>): Promise<{ proxy: LbProxy; url: string }> {
  const lb = new LbProxy({ upstreams });
  proxies.push(lb);
  const port = await lb.start();
  return { proxy: lb, url: `http://127.0.0.1:${port}` };
}

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((lb) => lb.stop()));
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

async function get(url: string, init?: RequestInit) {
  const response = await fetch(url, init);
  return {
    status: response.status,
    upstream: response.headers.get(UPSTREAM_HEADER),
    contentType: response.headers.get('content-type'),
    body: (await response.json()) as Record<string, unknown>,
  };
}

describe('LbProxy', () => {
  it('round-robins over the members and names the one that answered', async () => {
    const a = await member('a');
    const b = await member('b');
    const c = await member('c');
    const { url } = await proxy({ api: [a.endpoint, b.endpoint, c.endpoint] });
    const answers = [];
    for (let i = 0; i < 6; i += 1) answers.push(await get(`${url}/`));
    expect(answers.map((answer) => answer.body.name)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(answers.map((answer) => answer.upstream)).toEqual([
      a.endpoint,
      b.endpoint,
      c.endpoint,
      a.endpoint,
      b.endpoint,
      c.endpoint,
    ]);
  });

  it("passes the member's status, headers and body through, and forwards method, path and body", async () => {
    const a = await member('a', 201);
    const { url } = await proxy({ api: [a.endpoint] });
    const answer = await fetch(`${url}/calls?x=1`, { method: 'POST', body: 'hello' });
    expect(answer.status).toBe(201);
    expect(answer.headers.get('x-member')).toBe('a');
    expect(await answer.json()).toEqual({ name: 'a', method: 'POST', path: '/calls?x=1', body: 'hello' });
  });

  it('retries the next member when one refuses the connection', async () => {
    const gone = await closedEndpoint();
    const b = await member('b');
    const { url } = await proxy({ api: [gone, b.endpoint] });
    for (let i = 0; i < 3; i += 1) {
      const answer = await get(`${url}/`);
      expect(answer.status).toBe(200);
      expect(answer.upstream).toBe(b.endpoint);
    }
  });

  it('fails with a 502 problem when no member answers', async () => {
    const gone = [await closedEndpoint(), await closedEndpoint()];
    const { url } = await proxy({ api: gone });
    const answer = await get(`${url}/`);
    expect(answer.status).toBe(502);
    expect(answer.contentType).toContain('application/problem+json');
    expect(answer.body).toMatchObject({ status: 502, title: 'Bad Gateway', service: 'api', refused: gone });
  });

  it('fails with a 502 problem when the service has no members', async () => {
    const { url } = await proxy({ api: [] });
    const answer = await get(`${url}/`);
    expect(answer.status).toBe(502);
    expect(answer.body.detail).toBe('no members for api');
  });

  it('swaps the member list on update: later requests reach only the new members', async () => {
    const a = await member('a');
    const b = await member('b');
    const { proxy: lb, url } = await proxy({ api: [a.endpoint] });
    expect((await get(`${url}/`)).body.name).toBe('a');
    lb.update({ api: [b.endpoint] });
    for (let i = 0; i < 3; i += 1) expect((await get(`${url}/`)).body.name).toBe('b');
    expect(lb.members()).toEqual({ api: [b.endpoint] });
  });

  it('rejects an update with a malformed member and keeps the current members', async () => {
    const a = await member('a');
    const { proxy: lb, url } = await proxy({ api: [a.endpoint] });
    expect(() => lb.update({ api: ['not a member'] })).toThrow(/host:port/);
    expect((await get(`${url}/`)).body.name).toBe('a');
  });

  it('routes /<service>/… to that service (prefix stripped) when it balances several', async () => {
    const a = await member('a');
    const m = await member('m');
    const { url } = await proxy({ api: [a.endpoint], media: [m.endpoint] });
    expect((await get(`${url}/media/streams/1`)).body).toMatchObject({ name: 'm', path: '/streams/1' });
    expect((await get(`${url}/api`)).body).toMatchObject({ name: 'a', path: '/' });
    const unknown = await get(`${url}/other`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.services).toEqual(['api', 'media']);
  });

  it('accepts members written as URLs', async () => {
    const a = await member('a');
    const { url } = await proxy({ api: [`http://${a.endpoint}`] });
    const answer = await get(`${url}/`);
    expect(answer.body.name).toBe('a');
    expect(answer.upstream).toBe(`http://${a.endpoint}`);
    expect(parseMember('10.0.0.5:8080')).toEqual({ label: '10.0.0.5:8080', host: '10.0.0.5', port: 8080 });
    expect(() => parseMember('10.0.0.5')).toThrow();
    expect(() => parseMember('https://10.0.0.5:443')).toThrow();
  });
});
