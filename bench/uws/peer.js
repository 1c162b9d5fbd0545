// What both uWebSockets.js peers (server.js, echo.js) share: loading uWS's
// native addon, the listen address from the environment, listening, and
// stopping on SIGTERM or SIGINT.
//
//   node peer.js --check    exits 0 if the native addon loads here, else 1
//                           (bench/lib.sh runs it before measuring uws)
'use strict'

// The package's own entry point (src/uws.js) silently falls back to a
// Node.js implementation on top of the ws package when the native addon
// does not load (another Node ABI, an old glibc). A benchmark of that
// would be a benchmark of ws under uWS's name, so the peers load the addon
// itself and refuse to start without it.
const addonPath = 'uWebSockets.js/binaries/uws_' + process.platform + '_' + process.arch + '_' +
  process.versions.modules + '.node'

function loadNative () {
  try {
    return require(addonPath)
  } catch (err) {
    console.error('uws: the native uWebSockets.js addon ' + addonPath + ' does not load under Node ' +
      process.version + ' (run npm ci in bench/uws; newer uWS builds need glibc 2.38): ' + err.message)
    process.exit(1)
  }
}

const uWS = loadNative()

// listenFromEnv listens with app on HOST (default 127.0.0.1) and PORT
// (default defaultPort), logs the address on stderr under name, and closes
// the listening socket and exits 0 on SIGTERM or SIGINT (open WebSockets
// end with the process, as in the other peers). It exits 1 if it cannot
// listen. Call it once, from the main module.
function listenFromEnv (app, name, defaultPort, path) {
  const host = process.env.HOST || '127.0.0.1'
  const port = Number(process.env.PORT || defaultPort)
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(name + ': PORT must be 1..65535, got ' + JSON.stringify(process.env.PORT))
    process.exit(2)
  }
  app.listen(host, port, function (listenSocket) {
    if (!listenSocket) {
      console.error(name + ': cannot listen on ' + host + ':' + port)
      process.exit(1)
    }
    console.error(name + ': uWebSockets.js ' + require('uWebSockets.js/package.json').version +
      ' (native), node ' + process.version + ', listening on ws://' + host + ':' + port + path)
    function shutdown () {
      uWS.us_listen_socket_close(listenSocket)
      process.exit(0)
    }
    process.on('SIGINT', shutdown)
    process.on('SIGTERM', shutdown)
  })
}

module.exports = { uWS, listenFromEnv }

if (require.main === module && process.argv[2] === '--check') {
  process.exit(0) // loadNative above exited 1 if the addon did not load
}
