import type { RequestHandler } from "./listen";

/**
 * A plain JSON POST (curl's -H 'content-type: application/json') to a server-streaming method
 * gets Connect's 415 with an empty body, which tells a curl user nothing: this answers the same
 * 415 with a Connect error body that says what the method takes instead.
 */
export function withStreamingJsonHint(handler: RequestHandler, isServerStreaming: (path: string) => boolean): RequestHandler {
  return (req, res) => {
    const type = req.headers["content-type"] ?? "";
    const path = (req.url ?? "").split("?")[0];
    if (req.method !== "POST" || !/^application\/json\b/.test(type) || !isServerStreaming(path)) return handler(req, res);
    const method = path.slice(path.lastIndexOf("/") + 1);
    const message =
      `${method} is a server-streaming method: over Connect its request is content-type application/connect+json, ` +
      "one message in an envelope (a flags byte 0, the length as 4 bytes big-endian, then the JSON); see the README, curl";
    req.resume(); // the body is not read: drained, so the connection stays usable
    res.writeHead(415, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "invalid_argument", message }));
  };
}
