import type { RequestHandler } from "./listen";

type Response = Parameters<RequestHandler>[1];
export type Headers = Record<string, string | string[] | number | undefined>;

/**
 * Calls `see` with the headers of each `writeHead(status, headers)` and `addTrailers(trailers)`
 * of `res`, before they are written, to read them or correct them in place. Connect and the
 * unary fast path both answer through these two, so a gRPC call's status is always seen here.
 */
export function onResponseHeaders(res: Response, see: (headers: Headers, trailers: boolean) => void): void {
  const writeHead = res.writeHead;
  const addTrailers = res.addTrailers;
  res.writeHead = function (this: Response, status: number, ...rest: unknown[]) {
    const last = rest[rest.length - 1];
    if (last && typeof last === "object" && !Array.isArray(last)) see(last as Headers, false);
    return (writeHead as (...a: unknown[]) => Response).call(this, status, ...rest);
  } as typeof res.writeHead;
  res.addTrailers = function (this: Response, headers: Headers) {
    see(headers, true);
    return (addTrailers as (h: Headers) => void).call(this, headers);
  } as typeof res.addTrailers;
}
