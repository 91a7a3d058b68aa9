// A TCP proxy a browser test owns, on 127.0.0.1: put between an edge and what connects to it
// (a relay's upstream link, a browser's socket) to make partitions on loopback without
// namespaces. cut() closes every proxied connection and refuses new ones (accepted, then closed
// at once: the peer sees a failed attempt, not a hang) until heal(). swallowReplies() keeps
// passing the client's bytes on but drops everything coming back: the edge stores and acks,
// the client never hears it (a lost ack).
import net from 'node:net';

export class TcpProxy {
  constructor(targetPort, targetHost = '127.0.0.1') {
    this.targetPort = targetPort;
    this.targetHost = targetHost;
    this.port = 0;
    this.state = 'open';     // open | cut | swallowing
    this.pairs = new Set();  // [client, upstream] sockets
    this.accepted = 0;       // connections passed through
    this.refused = 0;        // connections closed at once while cut
    this.server = net.createServer((client) => this._accept(client));
  }

  start() {
    return new Promise((resolveStart, rejectStart) => {
      this.server.once('error', rejectStart);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolveStart(this);
      });
    });
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  _accept(client) {
    client.on('error', () => {});
    if (this.state === 'cut') {
      this.refused += 1;
      client.destroy();
      return;
    }
    this.accepted += 1;
    const upstream = net.connect(this.targetPort, this.targetHost);
    upstream.on('error', () => {});
    const pair = [client, upstream];
    this.pairs.add(pair);
    const drop = () => {
      if (!this.pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (this.state !== 'swallowing') client.write(chunk);
    });
  }

  _dropAll() {
    for (const [client, upstream] of [...this.pairs]) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  cut() {
    this.state = 'cut';
    this._dropAll();
  }

  heal() {
    this.state = 'open';
  }

  swallowReplies() {
    this.state = 'swallowing';
  }

  async stop() {
    this._dropAll();
    await new Promise((resolveStop) => this.server.close(() => resolveStop()));
  }
}
