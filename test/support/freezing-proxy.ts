import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

/** A TCP proxy whose open connections can be frozen: bytes stop, sockets stay open. */
export class FreezingProxy {
  private server: Server;
  private frozen = new Set<Socket>();
  private live = new Set<[Socket, Socket]>();
  port = 0;
  constructor(private target: { host: string; port: number }) {
    this.server = createServer((client) => {
      const upstream = netConnect(target.port, target.host);
      client.pipe(upstream).pipe(client);
      const pair: [Socket, Socket] = [client, upstream];
      this.live.add(pair);
      const drop = () => {
        this.live.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
  }
  async start() {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  /** Every connection open now goes silent, as behind a dropped route. */
  freezeOpenConnections() {
    for (const [client, upstream] of this.live) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
      this.frozen.add(client).add(upstream);
    }
    this.live.clear();
  }
  async stop() {
    for (const s of this.frozen) s.destroy();
    for (const [a, b] of this.live) (a.destroy(), b.destroy());
    await new Promise((r) => this.server.close(r));
  }
}
