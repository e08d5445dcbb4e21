import { connect, createServer, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: string;
}

/** The HTTP/1.1 responses in `data` that are complete, and how many bytes they took. */
function parseResponses(data: Buffer, headRequests: boolean): { responses: RawResponse[]; used: number } {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = data.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const [statusLine, ...lines] = data.subarray(at, headEnd).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
    if (!Number.isInteger(status)) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let bodyStart = headEnd + 4;
    let body: Buffer;
    if (headRequests || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = Buffer.alloc(0);
    } else if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      const parts: Buffer[] = [];
      let complete = false;
      while (!complete) {
        const sizeEnd = data.indexOf('\r\n', bodyStart);
        if (sizeEnd < 0) return { responses, used: at };
        const size = parseInt(data.subarray(bodyStart, sizeEnd).toString('latin1'), 16);
        if (data.length < sizeEnd + 2 + size + 2) return { responses, used: at };
        parts.push(data.subarray(sizeEnd + 2, sizeEnd + 2 + size));
        bodyStart = sizeEnd + 2 + size + 2;
        complete = size === 0;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (data.length < bodyStart + length) break;
      body = data.subarray(bodyStart, bodyStart + length);
      bodyStart += length;
    } else {
      break; // delimited by the connection closing: complete only at the end
    }
    if (status >= 200) responses.push({ status, headers, body: body.toString('utf8') });
    at = bodyStart;
  }
  return { responses, used: at };
}

export interface RawConnection {
  socket: Socket;
  write(bytes: string | Buffer): void;
  /** The next `count` responses; fewer if the server closes the connection first. */
  responses(count: number, timeoutMs?: number): Promise<RawResponse[]>;
  close(): void;
}

/**
 * A connection that sends bytes exactly as given (no client-side checks of methods, headers or
 * framing) and parses what comes back, for tests of how the server treats malformed requests.
 */
export async function openRaw(url: string, opts: { headRequests?: boolean } = {}): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let data = Buffer.alloc(0);
  const parsed: RawResponse[] = [];
  let closed = false;
  let wake: () => void = () => undefined;
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    const { responses, used } = parseResponses(data, opts.headRequests ?? false);
    parsed.push(...responses);
    data = data.subarray(used);
    wake();
  });
  socket.on('error', () => undefined); // a reset after the answer is the server closing: reported as closed
  socket.on('close', () => {
    closed = true;
    // A response delimited by the end of the connection.
    const headEnd = data.indexOf('\r\n\r\n');
    if (headEnd >= 0) {
      const withLength = Buffer.concat([
        data.subarray(0, headEnd),
        Buffer.from(`\r\ncontent-length: ${data.length - headEnd - 4}`),
        data.subarray(headEnd),
      ]);
      parsed.push(...parseResponses(withLength, opts.headRequests ?? false).responses);
    }
    wake();
  });
  return {
    socket,
    write: (bytes) => {
      if (!socket.destroyed) socket.write(bytes);
    },
    async responses(count, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (parsed.length < count && !closed) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no complete answer within ${timeoutMs} ms; received so far: ${JSON.stringify(data.toString('latin1').slice(0, 300))}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      return parsed.splice(0, count);
    },
    close: () => socket.destroy(),
  };
}

/** Sends one request as raw bytes on a fresh connection; null when the server closed without answering. */
export async function rawRequest(url: string, bytes: string | Buffer, opts: { headRequest?: boolean; timeoutMs?: number } = {}): Promise<RawResponse | null> {
  const conn = await openRaw(url, { headRequests: opts.headRequest ?? false });
  try {
    conn.write(bytes);
    const [response] = await conn.responses(1, opts.timeoutMs);
    return response ?? null;
  } finally {
    conn.close();
  }
}

/** A local port nothing listens on: connections to it are refused at once. */
export async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
