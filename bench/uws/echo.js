// The tutorial's echo on uWebSockets.js, a peer of bench/floor and
// bench/node-tutorial in bench/run-echo.sh. Reply contract (the same as
// theirs): for each non-empty text message str on /ws, one text message
//   "服务端已收到消息:" + str + "服务端发来消息: Hello," + str
// Binary and empty messages get no reply.
//
//   HOST=127.0.0.1 PORT=9004 node echo.js
'use strict'

const { uWS, listenFromEnv } = require('./peer')

// Limits, as bench/floor's defaults.
const maxMessageBytes = 64 * 1024 // larger messages close the connection
const idleTimeoutSeconds = 60 // a connection that sends nothing for this long is closed
// A client that leaves this much of its replies unread is closed: uWS
// would otherwise drop further replies silently.
const maxUnsentBytes = 1 << 20

const prefix = Buffer.from('服务端已收到消息:')
const middle = Buffer.from('服务端发来消息: Hello,')

const app = uWS.App()
app.ws('/ws', {
  maxPayloadLength: maxMessageBytes,
  idleTimeout: idleTimeoutSeconds,
  maxBackpressure: maxUnsentBytes,
  closeOnBackpressureLimit: true,
  // uWS checks that text messages are valid UTF-8 before they reach
  // message (and closes the connection with 1007 otherwise), so the reply
  // is assembled from the bytes without decoding them. The message
  // ArrayBuffer is only valid during this call: Buffer.concat copies it.
  message (ws, message, isBinary) {
    if (isBinary || message.byteLength === 0) return
    const msg = Buffer.from(message)
    ws.send(Buffer.concat([prefix, msg, middle, msg]), false)
  }
})
app.any('/*', function (res) {
  res.writeStatus('404 Not Found').end('not found')
})

listenFromEnv(app, 'uws-echo', 9004, '/ws')
