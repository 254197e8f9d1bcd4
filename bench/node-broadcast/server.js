// The peer `firmware-sim bench fanout` measures the hub against: the classic minimal
// broadcast server built on the `ws` package. A socket on /device is a publisher: each
// frame it sends is relayed verbatim to every open listening socket with
// `clients.forEach(c => c.send(msg))`. Sockets on any other path are listeners.
// Prints `listening ws://HOST:PORT` once ready. PORT=0 (default) picks a free port.
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const wss = new WebSocketServer({
  host: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 0),
});

wss.on('listening', () => {
  const { address, port } = wss.address();
  console.log(`listening ws://${address}:${port}`);
});

wss.on('connection', (ws, req) => {
  if (!req.url.startsWith('/device')) return;
  ws.isDevice = true;
  ws.on('message', (msg, isBinary) => {
    wss.clients.forEach((c) => {
      if (!c.isDevice && c.readyState === WebSocket.OPEN) c.send(msg, { binary: isBinary });
    });
  });
});

process.on('SIGTERM', () => process.exit(0));
