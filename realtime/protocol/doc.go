// Package protocol is the JSON wire format of duplex's real-time channels:
// client commands, replies, server pushes and the stable error codes.
//
// It knows nothing about hubs, brokers or sockets; it only turns bytes into
// typed values and back. Every function in this package is pure and safe
// for concurrent use; values it returns are owned by the caller.
//
// One WebSocket text frame may carry several messages separated by '\n'
// (in both directions). Encoded messages never contain a raw newline:
// JSON payloads are compacted before they are framed.
package protocol
