import type { Http2ServerRequest, IncomingHttpHeaders } from "node:http2";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";

/**
 * The HandlerContext of one unary call on the fast path, made lazily: its signal, headers and
 * values cost nothing until an implementation asks for them. Connect's own context links three
 * abort signals per call (deadline, request, shutdown), each an event listener added and
 * removed, and builds three Headers objects, whether used or not. A class rather than a
 * createX function because its laziness is getters over private fields.
 */
export class UnaryCallContext implements HandlerContext {
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  private controller?: AbortController;
  private abortedWith?: unknown;
  private headers?: Headers;
  private _responseHeader?: Headers;
  private _responseTrailer?: Headers;
  private _values?: ContextValues;

  /**
   * `deadline`: when the call times out, in Date.now() time, if the client set a timeout.
   * `initialValues`: the server's context values for the request, as Connect's adapter takes them.
   */
  constructor(
    readonly method: DescMethodUnary,
    private readonly req: Http2ServerRequest,
    private readonly deadline: number | undefined,
    private readonly initialValues?: (req: Http2ServerRequest) => ContextValues,
  ) {}

  get service() {
    return this.method.parent;
  }

  /** The absolute URL, as Connect gives it. */
  get url(): string {
    const h = this.req.headers;
    return `${h[":scheme"] ?? "http"}://${h[":authority"] ?? h.host ?? "localhost"}${this.req.url}`;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortedWith !== undefined) this.controller.abort(this.abortedWith);
    }
    return this.controller.signal;
  }

  readonly timeoutMs = (): number | undefined => (this.deadline === undefined ? undefined : this.deadline - Date.now());

  get requestHeader(): Headers {
    return (this.headers ??= toHeaders(this.req.headers));
  }

  get responseHeader(): Headers {
    return (this._responseHeader ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this._responseTrailer ??= new Headers());
  }

  get values(): ContextValues {
    return (this._values ??= this.initialValues ? this.initialValues(this.req) : createContextValues());
  }

  /** The headers and trailers the implementation set, if it set any. */
  get responseMetadata(): { header?: Headers; trailer?: Headers } {
    return { header: this._responseHeader, trailer: this._responseTrailer };
  }

  /** Ends the call early (the client cancelled, the deadline passed, the server stops). */
  abort(reason: unknown): void {
    if (this.abortedWith !== undefined) return;
    this.abortedWith = reason;
    this.controller?.abort(reason);
  }
}

function toHeaders(incoming: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(incoming)) {
    if (key.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(key, v);
    else headers.append(key, value);
  }
  return headers;
}
