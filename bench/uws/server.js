// A uWebSockets.js peer of duplex for bench/run-broadcast.sh and
// bench/run-connect.sh: the part of duplex's protocol (docs/protocol.md)
// that cmd/duplexload uses, with uWS's own topic pub/sub doing the fan-out.
//
//   HOST=127.0.0.1 PORT=9015 API_KEY=bench-key node server.js
//
// GET /realtime (WebSocket), text frames of JSON commands, several per
// frame separated by \n as in duplex:
//   {"id":N,"op":"subscribe","channel":CH} -> {"id":N,"result":{"offset":O,"epoch":"E"}}
//   {"id":N,"op":"unsubscribe","channel":CH} -> {"id":N,"result":{}}
//   {"id":N,"op":"ping"}                   -> {"id":N,"result":{}}
// other ops, and bad commands, get duplex's error replies
// ({"id":N,"error":{"code":"bad_request","message":...}}).
// POST /api/publish, Authorization: Bearer $API_KEY,
//   {"channel":CH,"data":DATA} -> {"offset":O,"epoch":"E"}
// pushes {"channel":CH,"offset":O,"data":DATA} to every subscriber of CH:
// the bytes duplex pushes for a publication made through its API.
//
// Framing: one message per WebSocket frame. duplex puts up to 16 queued
// messages in one frame (split on \n), but only when they queue up behind
// a slow socket; under the benchmarks' loads its frames hold one message
// too, so both servers write the same bytes per delivery.
//
// Not implemented (duplex has them; the load tool does not use them):
// namespaces and their options (every valid channel name is accepted,
// nothing is kept in history, there is no presence), connect and tokens,
// client publish, recovery, the command rate limit, Origin checks, the
// rest of the HTTP API, metrics.
'use strict'

const crypto = require('crypto')
const { uWS, listenFromEnv } = require('./peer')
const wire = require('./wire')

// Limits, as duplex's defaults.
const maxMessageBytes = 64 * 1024 // WS_MAX_MESSAGE_BYTES: larger frames close the connection
const maxAPIBodyBytes = 64 * 1024 // handlers.MaxAPIBodyBytes: larger bodies get 413
const maxSubscriptions = 128 // realtime.DefaultMaxSubscriptions, per connection
// WS_SEND_QUEUE_BYTES: a subscriber with this much unsent is closed, as
// duplex closes one whose queue fills with what it may not drop (1013);
// uWS would otherwise skip it silently, a loss duplex never has.
const maxSendQueueBytes = 1 << 20
// Keepalive: duplex pings every 25 s and drops a connection silent for
// 35 s; uWS pings an idle connection and closes it after idleTimeout
// (a multiple of 4 s, its timer's resolution).
const idleTimeoutSeconds = 36
// Channels kept (offset and epoch). At the limit, channels nobody is
// subscribed to are forgotten: one that comes back starts a new epoch at
// offset 0, as a duplex channel whose history expired.
const maxChannels = 100000

const apiKey = process.env.API_KEY || ''
const apiKeyBytes = Buffer.from(apiKey)
const authPrefix = 'Bearer '

const app = uWS.App()

// ---- channels --------------------------------------------------------------

// channels: name -> { offset, epoch }. Only the event loop touches it.
const channels = new Map()

// channelState returns name's state, creating it at offset 0 with a fresh
// epoch; null if maxChannels are kept and none can be forgotten.
function channelState (name) {
  let ch = channels.get(name)
  if (ch) return ch
  if (channels.size >= maxChannels) {
    for (const [n] of channels) {
      if (app.numSubscribers(n) === 0) channels.delete(n)
    }
    if (channels.size >= maxChannels) return null
  }
  ch = { offset: 0, epoch: crypto.randomBytes(6).toString('hex') }
  channels.set(name, ch)
  return ch
}

// ---- /realtime -------------------------------------------------------------

// command runs one command line of ws and returns its reply.
function command (ws, line) {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    return wire.encodeError(0, 'bad_request', 'malformed command: ' + err.message)
  }
  if (cmd === null || typeof cmd !== 'object' || Array.isArray(cmd)) {
    return wire.encodeError(0, 'bad_request', 'malformed command: not a JSON object')
  }
  if (cmd.id === undefined) return wire.encodeError(0, 'bad_request', 'missing field: id')
  if (!Number.isSafeInteger(cmd.id) || cmd.id < 1) return wire.encodeError(0, 'bad_request', 'id must be an integer >= 1')
  const id = cmd.id
  if (cmd.op === undefined) return wire.encodeError(id, 'bad_request', 'missing field: op')
  switch (cmd.op) {
    case 'ping':
      return wire.encodeResult(id, '{}')
    case 'subscribe':
    case 'unsubscribe':
      break
    default:
      return wire.encodeError(id, 'bad_request', 'unknown op ' + JSON.stringify(String(cmd.op).slice(0, 32)) +
        ' (this benchmark peer implements subscribe, unsubscribe and ping)')
  }
  if (cmd.channel === undefined) return wire.encodeError(id, 'bad_request', 'missing field: channel')
  const bad = wire.channelError(cmd.channel)
  if (bad) return wire.encodeError(id, 'bad_channel', bad)
  const name = cmd.channel
  if (cmd.op === 'unsubscribe') {
    if (!ws.unsubscribe(name)) return wire.encodeError(id, 'not_found', 'not subscribed to ' + name)
    return wire.encodeResult(id, '{}')
  }
  if (ws.isSubscribed(name)) return wire.encodeError(id, 'bad_request', 'already subscribed to ' + name)
  if (ws.getTopics().length >= maxSubscriptions) {
    return wire.encodeError(id, 'limit_exceeded', 'at most ' + maxSubscriptions + ' subscriptions per connection')
  }
  const ch = channelState(name)
  if (!ch) return wire.encodeError(id, 'unavailable', 'too many channels')
  // The event loop runs nothing else between the subscription and the
  // reply, so the reply precedes every push of the channel, as in duplex.
  ws.subscribe(name)
  return wire.encodeResult(id, wire.encodePosition(ch.offset, ch.epoch))
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

app.ws('/realtime', {
  maxPayloadLength: maxMessageBytes,
  maxBackpressure: maxSendQueueBytes,
  closeOnBackpressureLimit: true,
  idleTimeout: idleTimeoutSeconds,
  sendPingsAutomatically: true,
  message (ws, message, isBinary) {
    if (isBinary) {
      ws.end(1003, 'binary messages are not part of the protocol') // as duplex
      return
    }
    // uWS has checked the UTF-8 of text frames already (it drops a
    // connection sending invalid UTF-8, or a frame over maxPayloadLength,
    // without a close frame: 1006 where duplex sends 1007 and 1009);
    // decoding strictly keeps that true here whatever the build.
    let text
    try {
      text = utf8.decode(message)
    } catch {
      ws.end(1007, 'invalid UTF-8')
      return
    }
    for (let line of text.split('\n')) {
      if (line.endsWith('\r')) line = line.slice(0, -1)
      if (line === '') continue
      ws.send(command(ws, line), false)
    }
  }
})

// ---- POST /api/publish ---------------------------------------------------

// answer sends status and a JSON body; close also closes the connection
// (for a body that is not read to its end).
function answer (res, status, body, close) {
  res.cork(function () {
    res.writeStatus(status).writeHeader('Content-Type', 'application/json').end(body, close)
  })
}

function apiError (res, status, message, code, close) {
  const body = code ? { code, error: message } : { error: message }
  answer(res, status, JSON.stringify(body), close)
}

// authorized compares the request's bearer key with API_KEY in constant time.
function authorized (header) {
  if (!header.startsWith(authPrefix)) return false
  const got = Buffer.from(header.slice(authPrefix.length))
  return got.length === apiKeyBytes.length && crypto.timingSafeEqual(got, apiKeyBytes)
}

// publish handles a complete body.
function publish (res, body) {
  let text
  try {
    text = utf8.decode(body)
  } catch {
    return apiError(res, '400 Bad Request', 'body must be a JSON object: invalid UTF-8')
  }
  let req
  try {
    req = JSON.parse(text)
  } catch (err) {
    return apiError(res, '400 Bad Request', 'body must be a JSON object: ' + err.message)
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    return apiError(res, '400 Bad Request', 'body must be a JSON object')
  }
  for (const k of Object.keys(req)) {
    if (k !== 'channel' && k !== 'data') {
      return apiError(res, '400 Bad Request', 'body must be a JSON object: unknown field ' + JSON.stringify(k) +
        ' (this benchmark peer takes channel and data)')
    }
  }
  if (typeof req.channel !== 'string') {
    return apiError(res, '400 Bad Request', req.channel === undefined ? 'channel is required' : 'body must be a JSON object: channel must be a string')
  }
  const bad = wire.channelError(req.channel)
  if (bad) return apiError(res, '400 Bad Request', bad, 'bad_channel')
  if (req.data === undefined || req.data === null) return apiError(res, '400 Bad Request', 'data is required', 'bad_request')
  const ch = channelState(req.channel)
  if (!ch) return apiError(res, '503 Service Unavailable', 'too many channels', 'unavailable')
  const data = wire.compact(wire.rawMember(body, 'data'))
  ch.offset++
  app.publish(req.channel, wire.encodePublication(req.channel, ch.offset, data), false, false)
  answer(res, '200 OK', wire.encodePosition(ch.offset, ch.epoch))
}

app.post('/api/publish', function (res, req) {
  if (apiKey === '') {
    return apiError(res, '503 Service Unavailable', 'the HTTP API is off: set API_KEY to enable it', '', true)
  }
  if (!authorized(req.getHeader('authorization'))) {
    return res.cork(function () {
      res.writeStatus('401 Unauthorized').writeHeader('WWW-Authenticate', 'Bearer realm="duplex"')
        .writeHeader('Content-Type', 'application/json')
        .end('{"error":"missing or wrong API key (Authorization: Bearer $API_KEY)"}', true)
    })
  }
  const length = Number(req.getHeader('content-length') || 0)
  if (length > maxAPIBodyBytes) {
    return apiError(res, '413 Payload Too Large', 'body is over ' + maxAPIBodyBytes + ' bytes', '', true)
  }
  // The body comes in chunks whose memory uWS reuses after each call.
  const chunks = []
  let size = 0
  let done = false
  res.onAborted(function () { done = true })
  res.onData(function (chunk, isLast) {
    if (done) return
    size += chunk.byteLength
    if (size > maxAPIBodyBytes) { // a chunked body without a Content-Length
      done = true
      return apiError(res, '413 Payload Too Large', 'body is over ' + maxAPIBodyBytes + ' bytes', '', true)
    }
    chunks.push(Buffer.from(chunk.slice(0)))
    if (!isLast) return
    done = true
    publish(res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
  })
})

// uWS passes a GET /realtime that is not a WebSocket upgrade on to here.
app.any('/*', function (res, req) {
  if (req.getUrl() === '/realtime') return apiError(res, '426 Upgrade Required', 'this endpoint speaks WebSocket only')
  apiError(res, '404 Not Found', 'not found')
})

listenFromEnv(app, 'uws', 9015, '/realtime')
