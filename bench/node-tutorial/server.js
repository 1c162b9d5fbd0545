// The tutorial's Node.js WebSocket server (npm nodejs-websocket), kept as the
// baseline duplex is benchmarked against. Reply contract: for each non-empty
// text message str, send
//   "服务端已收到消息:" + str + "服务端发来消息: Hello," + str
//
//   PORT=9002 HOST=127.0.0.1 node server.js
'use strict'

const ws = require('nodejs-websocket')

const port = Number(process.env.PORT || 9002)
const host = process.env.HOST || '127.0.0.1'

const server = ws.createServer(function (conn) {
  conn.on('text', function (str) {
    if (!str) return
    conn.sendText('服务端已收到消息:' + str + '服务端发来消息: Hello,' + str)
  })
  // Without an error listener a reset connection would crash the process.
  conn.on('error', function () {})
})

server.on('error', function (err) {
  console.error('node-tutorial:', err.message)
  process.exit(1)
})

server.listen(port, host, function () {
  console.error('node-tutorial: listening on ws://' + host + ':' + port + '/')
})

function shutdown () {
  server.close()
  process.exit(0)
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)
