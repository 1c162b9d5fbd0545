// The bytes of duplex's protocol that the uWS peer (server.js) speaks:
// channel names, the data of POST /api/publish, and the replies and pushes
// it sends, each byte for byte as duplex sends them (realtime/protocol,
// realtime/channel.go, realtime/json.go, handlers/api.go). Pure functions,
// no state.
'use strict'

const maxChannelBytes = 255 // realtime.MaxChannelLength
const maxNamespaceBytes = 32 // realtime's maxNamespaceLength

// channelError returns why name is not a valid channel name (duplex's
// ParseChannel rules and messages), or '' if it is one.
function channelError (name) {
  if (typeof name !== 'string' || name === '') return 'empty channel name'
  if (name.length > maxChannelBytes) return 'channel name longer than ' + maxChannelBytes + ' bytes'
  if (!/^[A-Za-z0-9_.@:-]+$/.test(name)) return 'channel name may only contain A-Z a-z 0-9 _ . @ : -'
  const colon = name.indexOf(':')
  if (colon < 0 || colon === name.length - 1) return 'channel name must be namespace:name'
  const ns = name.slice(0, colon)
  if (ns.length > maxNamespaceBytes || !/^[a-z0-9_-]+$/.test(ns)) {
    return 'namespace must be 1-' + maxNamespaceBytes + ' bytes of a-z 0-9 _ -'
  }
  return ''
}

// JSON's structural bytes. Every byte of a multi-byte UTF-8 sequence is
// >= 0x80, so scanning the UTF-8 bytes for these is safe.
const QUOTE = 0x22
const BACKSLASH = 0x5c
const isSpace = (b) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09

// stringEnd returns the index just past the string that starts with the
// quote at i.
function stringEnd (buf, i) {
  for (i++; buf[i] !== QUOTE; i++) {
    if (buf[i] === BACKSLASH) i++
  }
  return i + 1
}

// valueEnd returns the index just past the JSON value that starts at i.
function valueEnd (buf, i) {
  let depth = 0
  for (;;) {
    const b = buf[i]
    if (b === QUOTE) {
      i = stringEnd(buf, i)
    } else if (b === 0x7b || b === 0x5b) { // { [
      depth++
      i++
    } else if (b === 0x7d || b === 0x5d) { // } ]
      depth--
      i++
    } else if (depth === 0 && (b === 0x2c || isSpace(b))) { // , ends a scalar
      return i
    } else {
      i++
    }
    if (depth === 0 && (b === QUOTE || b === 0x7d || b === 0x5d)) return i
    if (depth < 0) return i - 1 // the scalar ran into its object's }
  }
}

// rawMember returns the bytes of the value of member key in buf, a JSON
// object that JSON.parse has accepted, as they are in buf (JSON.parse
// would round the publish's 19-digit send time to a double, and the load
// tool measures latency from it). As with JSON.parse, the last of
// duplicate members wins. undefined if there is none.
function rawMember (buf, key) {
  let found
  let i = buf.indexOf(0x7b) + 1 // the object's {
  for (;;) {
    while (isSpace(buf[i]) || buf[i] === 0x2c) i++
    if (buf[i] !== QUOTE) return found // its }
    const keyEnd = stringEnd(buf, i)
    const name = JSON.parse(buf.toString('utf8', i, keyEnd))
    i = keyEnd
    while (isSpace(buf[i]) || buf[i] === 0x3a) i++ // spaces and the :
    const end = valueEnd(buf, i)
    if (name === key) found = buf.subarray(i, end)
    i = end
  }
}

// compact returns raw, a valid JSON value, without the spaces between its
// tokens: what Go's json.Compact, and so duplex, makes of a publication's
// data (strings and numbers are kept as they are, escapes included).
function compact (raw) {
  const out = Buffer.allocUnsafe(raw.length)
  let n = 0
  for (let i = 0; i < raw.length;) {
    const b = raw[i]
    if (b === QUOTE) {
      const end = stringEnd(raw, i)
      n += raw.copy(out, n, i, end)
      i = end
    } else {
      if (!isSpace(b)) out[n++] = b
      i++
    }
  }
  return out.subarray(0, n)
}

// encodePublication is duplex's push of a publication made through the API
// (no info): {"channel":CH,"offset":N,"data":DATA}. channel is valid, so
// it needs no escaping; data is compact.
function encodePublication (channel, offset, data) {
  return Buffer.concat([
    Buffer.from('{"channel":"' + channel + '","offset":' + offset + ',"data":'),
    data,
    Buffer.from('}')
  ])
}

// encodePosition is a channel's position {"offset":N,"epoch":"E"}, the
// answer to a publish and the result of a subscribe.
function encodePosition (offset, epoch) {
  return '{"offset":' + offset + ',"epoch":"' + epoch + '"}'
}

// encodeResult and encodeError are the replies to command id (id 0: one
// whose id could not be read, which duplex answers without an id).
function encodeResult (id, resultJSON) {
  return '{"id":' + id + ',"result":' + resultJSON + '}'
}

function encodeError (id, code, message) {
  const err = '"error":{"code":"' + code + '","message":' + JSON.stringify(message) + '}'
  return id > 0 ? '{"id":' + id + ',' + err + '}' : '{' + err + '}'
}

module.exports = {
  channelError,
  rawMember,
  compact,
  encodePublication,
  encodePosition,
  encodeResult,
  encodeError
}
