/**
 * duplex.js — a small, dependency-free client for duplex's real-time
 * protocol on /realtime (see docs/protocol.md). No build step: load it with
 * <script src="/static/js/duplex.js"></script> and use window.Duplex.
 *
 *   var dx = new Duplex({name: '李旺'});          // or {token: '<jwt>'}
 *   dx.on('state', function (e) { ... });         // connecting/connected/disconnected
 *   dx.on('publication', function (p) { ... });   // {channel, offset, epoch, data, info, recovered, latest}
 *   dx.subscribe('chat:lobby').then(function (res) { ... });
 *   dx.subscribe('push:prices', {latest: 1}).on('publication', function (p) { ... });
 *   dx.publish('chat:lobby', {text: '你好'}).catch(function (err) { err.code; });
 *   dx.connect();
 *
 * What it does for you:
 *  - every command returns a Promise, settled by the reply with the same id
 *    or rejected after a timeout (default 5 s) with an Error whose .code is
 *    the server's error code ("forbidden", "rate_limited", ...) or one of
 *    the client's own: "timeout", "disconnected", "outbox_full", "closed",
 *    "too_large" (over SSE: a command over the server's message limit);
 *  - it reconnects by itself with exponential backoff and full jitter
 *    (a random delay up to 0.5 s, 1 s, 2 s ... capped at 20 s);
 *  - after a reconnect it subscribes again to every channel, asking to
 *    recover from the last publication it saw ({offset, epoch}); recovered
 *    publications are delivered as ordinary 'publication' events (with
 *    recovered: true), in order and without duplicates; when the server
 *    cannot recover the gap it emits 'reload' so the page reloads history
 *    (or, for a subscription with latest, delivers the latest ones again);
 *  - subscribe(channel, {latest: n}) delivers the newest n kept
 *    publications at once, before the live ones, with no gap and no
 *    duplicate, and returns a subscription with its own events;
 *  - commands issued while disconnected (publish, presence, history, ping)
 *    wait in a small bounded outbox and go out after the reconnect, or are
 *    rejected when their timeout expires first;
 *  - one WebSocket frame may carry several newline-separated messages;
 *  - with getToken (a function returning a Promise of a token) it asks for
 *    a token on every connect, and refreshes the connection's token before
 *    it expires (at a random moment between 75 % and 90 % of its life) with
 *    the refresh command; a refused refresh emits 'refresh_failed' and is
 *    not retried (the server closes with 4001 at expiry, and the reconnect
 *    asks getToken again);
 *  - it does not reconnect after the server closed with 1000, 1008 or
 *    4500–4999 (docs/protocol.md, close codes);
 *  - where WebSocket is broken (a proxy that refuses the upgrade, a
 *    connect timeout) it falls back to server-sent events: GET
 *    /realtime/sse carries what the server sends, POST /realtime/emit the
 *    commands, with the same protocol; it keeps SSE for sseStickyMs
 *    before it tries WebSocket again on a reconnect. dx.transport says
 *    which one is in use.
 *
 * The URLs are built from location (ws: or wss:, same host), never
 * hard-coded. Everything the server sends is data: this client never puts
 * it into HTML, and pages using it should insert text with textContent.
 */
(function (global) {
  'use strict';

  var DEFAULTS = {
    path: '/realtime',
    timeout: 5000,          // ms, per command
    backoffMin: 500,        // ms, ceiling of the first reconnect delay
    backoffMax: 20000,      // ms, the largest ceiling
    outboxSize: 32,         // commands waiting while disconnected
    pingInterval: 25000,    // ms of silence before the client pings (0: never)
    connectTimeout: 10000,  // ms for the socket to open and connect to answer
    transports: ['websocket', 'sse'], // tried in this order
    fallbackTimeout: 5000,  // ms a transport with another after it may take to connect
    sseStickyMs: 300000     // ms SSE stays first after it connected in place of WebSocket
  };

  /** The transports, as in options.transports and dx.transport. */
  var WEBSOCKET = 'websocket';
  var SSE = 'sse';

  // CLOSE_TOKEN_EXPIRED is the server's close code for an expired token.
  var CLOSE_TOKEN_EXPIRED = 4001;
  // REFRESH_MARGIN: a token with less than this left is not sent on a
  // connect when getToken can give a new one.
  var REFRESH_MARGIN = 5000;
  // MAX_TIMEOUT is the longest delay setTimeout keeps (about 24.8 days).
  var MAX_TIMEOUT = 2147483647;

  /** The connection states, as emitted by the 'state' event. */
  var CONNECTING = 'connecting';
  var CONNECTED = 'connected';
  var DISCONNECTED = 'disconnected';

  /**
   * DuplexError is the Error every rejected command carries: .code is a
   * stable string (server codes from docs/protocol.md, or the client's
   * timeout/disconnected/outbox_full/closed/too_large), .message is for people.
   */
  function DuplexError(code, message) {
    var err = new Error(message || code);
    err.name = 'DuplexError';
    err.code = code;
    return err;
  }

  /**
   * Duplex is one connection to the server, kept open until close().
   *
   * options:
   *   name      a guest's nickname (sent with the connect command)
   *   token     an HS256 JWT from POST /api/token or `duplex token`
   *   getToken  function () → Promise of a token (your backend's /api/token
   *             behind your own login): called on every connect (unless
   *             token is still fresh) and before the token expires
   *   url       the socket URL; by default built from location + path
   *   path      '/realtime'
   *   timeout   ms before a command is rejected with code "timeout" (5000)
   *   backoffMin, backoffMax   reconnect delay ceilings in ms (500, 20000)
   *   outboxSize   commands kept while disconnected (32)
   *   pingInterval ms of silence after which the client pings (25000)
   *   connectTimeout ms for a connection to open and connect to answer (10000)
   *   transports  ['websocket', 'sse']: the order to try them in; a
   *             transport that fails before connect is answered (the
   *             upgrade refused, WebSocket missing, no answer within
   *             fallbackTimeout) is followed at once by the next one.
   *             ['sse'] or ['websocket'] pins one
   *   fallbackTimeout ms a transport that has another after it may take
   *             to connect before the next one is tried (5000)
   *   sseStickyMs after SSE connected in place of an earlier transport,
   *             reconnects start with SSE for this long (300000), then try
   *             the first one again. Before it connects over SSE after a
   *             fallback it probes WebSocket once: if that opens, it
   *             connects over WebSocket instead
   *   sseURL, emitURL  the stream's and the commands' URLs; by default
   *             url or location + path + '/sse' and '/emit'
   *
   * Events (dx.on(name, fn); fn gets one argument):
   *   state        {state, code?, reason?, delay?}: every state change
   *   transport    {transport, previous}: the connection that just
   *                connected uses another transport than the one before
   *                ('websocket' or 'sse'; previous is null at first);
   *                fired before connected
   *   connecting   {attempt, transport}: a connection attempt with that transport
   *   connected    {client, user, name, expires_in}: the connect result
   *                (who you are; expires_in: seconds the token has left)
   *   refreshed    {expires_in}: a refresh replaced the token
   *   refresh_failed a DuplexError: getToken failed (code
   *                "token_unavailable") or the server refused the new
   *                token (its code); no more refreshes on this socket
   *   unsubscribed {channel, reason, message}: reason "server" when the
   *                server's API ended the subscription (message: why)
   *   disconnected {code, reason, delay, final}: the socket closed; delay
   *                is the ms until the next attempt (-1 after close(), or
   *                final: the server asked not to reconnect)
   *   subscribed   {channel, result, resubscribed, recovered}: a subscribe
   *                (first or after a reconnect) succeeded
   *   publication  {channel, offset, epoch, data, info, recovered, latest,
   *                priority, tick}: latest is true for those of a
   *                subscribe's latest, tick for those a flow-controlled
   *                channel's tick frame showed, priority for those the
   *                server published with the priority flag
   *   tick         {channel, shown, total, missed}: a flow-controlled
   *                channel's tick frame (before its publications): the
   *                room had total publications in the tick and shows
   *                shown; missed is how many earlier ticks would have
   *                shown this client while it read too slowly. One's own
   *                publications come at once as well (not twice)
   *   join, leave  {channel, info}: someone entered or left (chat); the
   *                server gathers them per tick (200 ms in chat), so several
   *                may come at once, not in order with publications
   *   presence_count {channel, count}: the room has more members than its
   *                namespace sends joins and leaves for; instead, once per
   *                tick in which it changed, the count. A member list kept
   *                from joins and leaves is stale from then on: reload it
   *                (presence) when joins and leaves come again
   *   reload       {channel, offset, epoch}: after a reconnect the missed
   *                publications could not be recovered; reload history
   *                (not for subscriptions with latest: they get the
   *                latest publications again instead)
   *   missed       {missed}: the server dropped n queued messages because
   *                this client read too slowly (drop-oldest namespaces)
   *   error        a DuplexError (with .channel when it concerns one):
   *                failures nobody awaits, e.g. a failed resubscribe
   */
  function Duplex(options) {
    if (!(this instanceof Duplex)) return new Duplex(options);
    var o = {};
    var k;
    for (k in DEFAULTS) o[k] = DEFAULTS[k];
    for (k in (options || {})) if (options[k] !== undefined) o[k] = options[k];
    this.options = o;
    /** The current state: 'connecting', 'connected' or 'disconnected'. */
    this.state = DISCONNECTED;
    /** The connect result ({client, user, name}) once connected. */
    this.info = null;
    /** The transport of the last connection: 'websocket', 'sse' or null before the first. */
    this.transport = null;
    this._handlers = {};
    this._ws = null;        // the current connection: a WebSocket or an SSETransport
    this._kind = null;      // its transport
    this._tIndex = 0;       // its place in options.transports
    this._wasConnected = false; // connect was answered on it
    this._sseUntil = 0;     // local ms until which reconnects start with SSE
    this._fellBack = false; // this attempt moved on from a failed transport
    this._nextId = 1;
    this._pending = {};     // id → {resolve, reject, timer, op}
    this._outbox = [];      // {frame, entry} waiting for a connection
    this._subs = {};        // channel → subscription state
    this._attempt = 0;
    this._retryTimer = null;
    this._pingTimer = null;
    this._openTimer = null;
    this._closed = false;
    this._lastSeen = 0;
    this._token = o.token || null; // the token the next connect sends
    this._tokenDeadline = 0;       // local ms when the server closes for its expiry; 0: unknown
    this._refreshTimer = null;
    var self = this;
    // Reconnect at once when the browser says it is back online.
    this._onOnline = function () { self.reconnectNow(); };
  }

  /** socketURL builds ws(s)://<this host><path> from location. */
  Duplex.socketURL = function (path) {
    var scheme = global.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + global.location.host + (path || DEFAULTS.path);
  };

  /**
   * httpURL is the http(s) URL of the SSE endpoint end ('/sse' or
   * '/emit') beside the socket URL url (or, without url, of location +
   * path).
   */
  Duplex.httpURL = function (url, path, end) {
    if (!url) return global.location.protocol + '//' + global.location.host + (path || DEFAULTS.path) + end;
    return url.replace(/^ws(s?):/, 'http$1:').replace(/[?#].*$/, '').replace(/\/$/, '') + end;
  };

  Duplex.Error = DuplexError;
  Duplex.CONNECTING = CONNECTING;
  Duplex.CONNECTED = CONNECTED;
  Duplex.DISCONNECTED = DISCONNECTED;

  var proto = Duplex.prototype;

  // The event methods of a Duplex and of a Subscription (both keep their
  // handlers in this._handlers).

  /** on registers fn for event name and returns a function that removes it. */
  function on(name, fn) {
    (this._handlers[name] = this._handlers[name] || []).push(fn);
    var self = this;
    return function () { self.off(name, fn); };
  }

  /** off removes fn from event name. */
  function off(name, fn) {
    var list = this._handlers[name];
    if (!list) return;
    var i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  function emit(name, arg) {
    var list = (this._handlers[name] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try {
        list[i].call(this, arg);
      } catch (e) {
        // A page's handler must not break the client.
        if (global.console) global.console.error('duplex: "' + name + '" handler failed', e);
      }
    }
  }

  proto.on = on;
  proto.off = off;
  proto._emit = emit;

  proto._setState = function (state, extra) {
    var changed = this.state !== state;
    this.state = state;
    if (changed) {
      var ev = {state: state};
      for (var k in (extra || {})) ev[k] = extra[k];
      this._emit('state', ev);
    }
  };

  /** connect opens the connection (and keeps it open until close()). */
  proto.connect = function () {
    this._closed = false;
    if (this._ws || this._retryTimer) return this;
    if (global.addEventListener) global.addEventListener('online', this._onOnline);
    this._open();
    return this;
  };

  /**
   * close ends the connection for good: no reconnect; every waiting command
   * is rejected with code "closed". Subscriptions are forgotten.
   */
  proto.close = function () {
    this._closed = true;
    if (global.removeEventListener) global.removeEventListener('online', this._onOnline);
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    var ws = this._ws;
    this._teardown();
    if (ws) {
      try { ws.close(1000, 'bye'); } catch (e) { /* already closing */ }
    }
    // Forgotten first, so that the subscribes rejected below end here.
    var subs = this._subs;
    this._subs = {};
    this._rejectAll('closed', 'the client was closed');
    for (var ch in subs) {
      subs[ch].active = false;
      subs[ch]._settleWaiters(DuplexError('closed', 'the client was closed'));
      subs[ch]._emit('unsubscribed', {channel: ch, reason: 'closed'});
    }
    this._setState(DISCONNECTED, {code: 1000, reason: 'closed', delay: -1});
    this._emit('disconnected', {code: 1000, reason: 'closed', delay: -1});
  };

  // _open starts a connection attempt with the first transport to try:
  // SSE while it is sticky, else the first of options.transports.
  proto._open = function () {
    this._retryTimer = null;
    var order = this._transports();
    var sse = order.indexOf(SSE);
    this._tIndex = sse > 0 && Date.now() < this._sseUntil ? sse : 0;
    this._fellBack = false;
    this._openTransport();
  };

  // _transports is options.transports without those this browser lacks.
  proto._transports = function () {
    var order = [];
    var wanted = this.options.transports || DEFAULTS.transports;
    for (var i = 0; i < wanted.length; i++) {
      if (wanted[i] === WEBSOCKET || (wanted[i] === SSE && SSETransport.supported())) order.push(wanted[i]);
    }
    return order.length ? order : [WEBSOCKET];
  };

  // _openTransport opens the connection of transport number _tIndex.
  proto._openTransport = function () {
    var order = this._transports();
    this._kind = order[this._tIndex];
    this._wasConnected = false;
    this._setState(CONNECTING);
    this._emit('connecting', {attempt: this._attempt, transport: this._kind});
    if (this._kind === SSE) this._openSSE(false);
    else this._openWebSocket();
  };

  // _fallBack opens the next transport after one that failed before
  // connect was answered; false when there is none (or the close code
  // asks for no reconnect).
  proto._fallBack = function (code) {
    if (this._wasConnected || this._closed || !reconnectAllowed(code)) return false;
    if (this._tIndex + 1 >= this._transports().length) return false;
    this._tIndex++;
    this._fellBack = true;
    this._openTransport();
    return true;
  };

  // _armOpenTimer gives the connection conn until the connect timeout
  // (the fallback timeout when another transport could follow) to be
  // connected; then it counts as lost.
  proto._armOpenTimer = function (conn) {
    var self = this;
    var last = this._tIndex + 1 >= this._transports().length;
    this._openTimer = setTimeout(function () {
      if (self._ws === conn && self.state !== CONNECTED) {
        try { conn.close(); } catch (e) { /* ignore */ }
        self._lost(conn, 1006, 'connect timeout');
      }
    }, last ? this.options.connectTimeout : Math.min(this.options.fallbackTimeout, this.options.connectTimeout));
  };

  proto._openWebSocket = function () {
    var self = this;
    var url = this.options.url || Duplex.socketURL(this.options.path);
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      var reason = String(e && e.message || e);
      if (!this._fallBack(1006)) this._scheduleReconnect(1006, reason);
      return;
    }
    this._ws = ws;
    this._armOpenTimer(ws);
    ws.onopen = function () {
      if (self._ws !== ws) return;
      self._handshake(ws);
    };
    ws.onmessage = function (ev) {
      if (self._ws !== ws) return;
      self._lastSeen = Date.now();
      if (typeof ev.data === 'string') self._onFrame(ev.data);
    };
    ws.onclose = function (ev) {
      self._lost(ws, ev.code, ev.reason);
    };
    ws.onerror = function () { /* onclose follows and handles it */ };
  };

  // _openSSE opens the SSE stream. Its identity goes in the stream's
  // query (the emits are bound to it), so the token comes first; bare
  // opens it as a plain guest, after the server refused the token or the
  // name (400/401 before the stream), as a refused connect does on a
  // socket.
  proto._openSSE = function (bare) {
    var self = this;
    var o = this.options;
    var attempt = {};
    this._ws = attempt; // a placeholder while the token comes: close() and timeouts see it
    attempt.close = function () { attempt.closed = true; };
    this._armOpenTimer(attempt);
    var tokenP = bare ? Promise.resolve(null) : this._connectToken().then(null, function (err) {
      if (self._ws === attempt) self._emit('error', tokenUnavailable(err));
      return null;
    });
    tokenP.then(function (token) {
      if (self._ws !== attempt || attempt.closed) return;
      var query = token ? 'token=' + encodeURIComponent(token) : (!bare && o.name ? 'name=' + encodeURIComponent(o.name) : '');
      var url = o.sseURL || Duplex.httpURL(o.url, o.path, '/sse');
      if (query) url += (url.indexOf('?') >= 0 ? '&' : '?') + query;
      var conn = new SSETransport(url, o.emitURL || Duplex.httpURL(o.url, o.path, '/emit'), token);
      self._ws = conn;
      clearTimeout(self._openTimer);
      self._armOpenTimer(conn);
      conn.onopen = function () {
        if (self._ws !== conn) return;
        // The identity came with the stream: connect only asks who we are.
        var proceed = function () { self._sendConnect(conn, null, true); };
        if (self._fellBack && self._transports().indexOf(WEBSOCKET) >= 0) self._probeWebSocket(conn, proceed);
        else proceed();
      };
      conn.onmessage = function (ev) {
        if (self._ws !== conn) return;
        self._lastSeen = Date.now();
        self._onFrame(ev.data);
      };
      conn.onheartbeat = function () {
        if (self._ws === conn) self._lastSeen = Date.now();
      };
      conn.onclose = function (ev) {
        if (self._ws === conn && query && (ev.status === 400 || ev.status === 401)) {
          // The server refused the token or the name: say so, and carry on
          // as a guest (with getToken, the next connect asks for a new token).
          if (token && o.getToken) self._token = null;
          self._emit('error', DuplexError(ev.status === 401 ? 'unauthorized' : 'bad_request', ev.reason));
          self._teardown();
          self._openSSE(true);
          return;
        }
        self._lost(conn, ev.code, ev.reason);
      };
    });
  };

  // _handshake sends connect (with the token or name) before anything
  // else, then resubscribes and flushes the outbox once it is answered.
  proto._handshake = function (ws) {
    var self = this;
    this._connectToken().then(function (token) {
      if (self._ws === ws) self._sendConnect(ws, token);
    }, function (err) {
      if (self._ws !== ws) return;
      // No token to be had: connect as a guest, as with a refused one.
      self._emit('error', tokenUnavailable(err));
      self._sendConnect(ws, null);
    });
  };

  // tokenUnavailable is the DuplexError of a failed getToken().
  function tokenUnavailable(err) {
    return DuplexError('token_unavailable', 'getToken failed: ' + (err && err.message || err));
  }

  // _connectToken resolves with the token the next connect sends: the
  // current one while it is fresh, else a new one from getToken.
  proto._connectToken = function () {
    var self = this;
    var getToken = this.options.getToken;
    var fresh = this._token && (!this._tokenDeadline || Date.now() < this._tokenDeadline - REFRESH_MARGIN);
    if (fresh || !getToken) return Promise.resolve(this._token);
    return Promise.resolve().then(function () { return getToken(); }).then(function (token) {
      self._token = token;
      self._tokenDeadline = 0;
      return token;
    });
  };

  // _sendConnect sends connect with the token, else the name, or with
  // neither when bare (the SSE stream's query carried the identity).
  proto._sendConnect = function (ws, token, bare) {
    var self = this;
    var fields = {};
    if (token) fields.token = token;
    else if (this.options.name && !bare) fields.name = this.options.name;
    this._send('connect', fields, {direct: true}).then(function (info) {
      self._connected(ws, info);
    }, function (err) {
      if (self._ws !== ws) return;
      // A refused token or name leaves the connection as a guest: report
      // it and carry on, so public channels keep working. With getToken,
      // the next connect asks for a new token.
      if (token && self.options.getToken) self._token = null;
      self._emit('error', err);
      self._send('connect', {}, {direct: true}).then(function (info) {
        self._connected(ws, info);
      }, function () {
        if (self._ws === ws) { try { ws.close(); } catch (e) { /* ignore */ } }
      });
    });
  };

  proto._connected = function (ws, info) {
    if (this._ws !== ws) return;
    clearTimeout(this._openTimer);
    this._attempt = 0;
    this._wasConnected = true;
    // SSE in place of an earlier transport that just failed (and stayed
    // failed for the probe): keep it for a while (reconnects meanwhile do
    // not extend that).
    if (this._kind === SSE && this._fellBack) this._sseUntil = Date.now() + this.options.sseStickyMs;
    this.info = info;
    if (info.expires_in) this._tokenDeadline = Date.now() + info.expires_in * 1000;
    this._scheduleRefresh(ws, info.expires_in);
    if (this.transport !== this._kind) {
      var previous = this.transport;
      this.transport = this._kind;
      this._emit('transport', {transport: this._kind, previous: previous});
    }
    this._setState(CONNECTED);
    this._emit('connected', info);
    for (var ch in this._subs) this._sendSubscribe(this._subs[ch]);
    var box = this._outbox;
    this._outbox = [];
    for (var i = 0; i < box.length; i++) {
      if (!box[i].entry.done) this._transmit(box[i].frame, box[i].id, box[i].entry);
    }
    this._schedulePing();
  };

  // PROBE_TIMEOUT_MS bounds the WebSocket probe after a fallback (and so
  // the delay it adds to the SSE connect).
  var PROBE_TIMEOUT_MS = 2000;

  // _probeWebSocket runs when the SSE stream conn, opened because
  // WebSocket just failed, has its session and nothing was sent on it
  // yet: it opens one bare WebSocket. If that opens, WebSocket works
  // after all (the first one failed because the server was down for a
  // moment, as in a restart): the stream is dropped, before anything
  // subscribed through it, and the client connects over WebSocket at
  // once. If it fails (or takes longer than PROBE_TIMEOUT_MS), proceed()
  // carries on with SSE, which then stays first for sseStickyMs.
  proto._probeWebSocket = function (conn, proceed) {
    var self = this;
    var settled = false;
    var probe, timer;
    function fail() {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (self._ws === conn) proceed();
    }
    try {
      probe = new WebSocket(this.options.url || Duplex.socketURL(this.options.path));
    } catch (e) {
      fail();
      return;
    }
    timer = setTimeout(function () {
      try { probe.close(); } catch (e) { /* ignore */ }
      fail();
    }, Math.min(PROBE_TIMEOUT_MS, this.options.fallbackTimeout));
    probe.onclose = fail;
    probe.onopen = function () {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      probe.onclose = null;
      try { probe.close(1000, 'probe'); } catch (e) { /* ignore */ }
      if (self._ws !== conn) return;
      try { conn.close(1000, 'websocket works'); } catch (e) { /* ignore */ }
      self._drop(conn, 1000);
      self._attempt = 0;
      self._open();
    };
  };

  // _drop forgets the connection ws: pending replies on it are lost, so
  // their commands are rejected ("disconnected").
  proto._drop = function (ws, code) {
    this._teardown();
    for (var id in this._pending) {
      var p = this._pending[id];
      if (p.sent) this._settle(id, DuplexError('disconnected', 'connection lost before the reply (code ' + code + ')'));
    }
    for (var ch in this._subs) this._subs[ch].active = false;
  };

  // _lost handles the end of a socket: _drop, then a reconnect is
  // scheduled, unless the server's close code asks for none.
  proto._lost = function (ws, code, reason) {
    if (this._ws !== ws) return;
    this._drop(ws, code);
    if (this._closed) return;
    // A transport that never connected: the next one, at once.
    if (this._fallBack(code)) return;
    // The token expired: the reconnect asks getToken for a new one.
    if (code === CLOSE_TOKEN_EXPIRED && this.options.getToken) this._token = null;
    if (!reconnectAllowed(code)) {
      var ev = {code: code, reason: reason || '', delay: -1, final: true};
      this._setState(DISCONNECTED, ev);
      this._emit('disconnected', ev);
      return;
    }
    this._scheduleReconnect(code, reason);
  };

  // reconnectAllowed follows the server's convention: no reconnect after
  // 1000, 1008 or 4500–4999.
  function reconnectAllowed(code) {
    return code !== 1000 && code !== 1008 && !(code >= 4500 && code <= 4999);
  }

  // _scheduleRefresh arms the token refresh of socket ws for a token with
  // expiresIn seconds left, at a random moment between 75 % and 90 % of
  // that (the jitter spreads the refreshes of many clients).
  proto._scheduleRefresh = function (ws, expiresIn) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (!expiresIn || !this.options.getToken) return;
    var self = this;
    var delay = Math.min(expiresIn * 1000 * (0.75 + 0.15 * Math.random()), MAX_TIMEOUT);
    this._refreshTimer = setTimeout(function () { self._refresh(ws); }, delay);
  };

  // _refresh gets a token and sends refresh; on a refusal it gives up on
  // this socket (the server closes it with 4001 at expiry).
  proto._refresh = function (ws) {
    var self = this;
    var getToken = this.options.getToken;
    this._refreshTimer = null;
    if (this._ws !== ws || this.state !== CONNECTED) return;
    Promise.resolve().then(function () { return getToken(); }).then(function (token) {
      if (self._ws !== ws) return null;
      return self._send('refresh', {token: token}, {direct: true}).then(function (res) {
        if (self._ws !== ws) return;
        self._token = token;
        if (ws instanceof SSETransport) ws.token = token;
        self._tokenDeadline = Date.now() + res.expires_in * 1000;
        self._scheduleRefresh(ws, res.expires_in);
        self._emit('refreshed', {expires_in: res.expires_in});
      });
    }).then(null, function (err) {
      if (self._ws !== ws) return; // the reconnect gets a token of its own
      self._emit('refresh_failed', err && err.code ? err : tokenUnavailable(err));
    });
  };

  proto._teardown = function () {
    clearTimeout(this._openTimer);
    clearTimeout(this._pingTimer);
    clearTimeout(this._refreshTimer);
    this._openTimer = this._pingTimer = this._refreshTimer = null;
    if (this._ws) {
      this._ws.onopen = this._ws.onmessage = this._ws.onclose = this._ws.onerror = this._ws.onheartbeat = null;
      this._ws = null;
    }
    this.info = null;
  };

  /** backoff returns the next reconnect delay: full jitter, doubling ceiling. */
  proto._backoff = function () {
    var ceiling = Math.min(this.options.backoffMax, this.options.backoffMin * Math.pow(2, this._attempt));
    this._attempt++;
    return Math.floor(Math.random() * ceiling);
  };

  proto._scheduleReconnect = function (code, reason) {
    var self = this;
    var delay = this._backoff();
    var ev = {code: code, reason: reason || '', delay: delay};
    this._setState(DISCONNECTED, ev);
    this._emit('disconnected', ev);
    this._retryTimer = setTimeout(function () { self._open(); }, delay);
  };

  /**
   * reconnectNow skips the current backoff wait (for example when the
   * browser says it is back online).
   */
  proto.reconnectNow = function () {
    if (this._closed || !this._retryTimer) return;
    clearTimeout(this._retryTimer);
    this._open();
  };

  proto._schedulePing = function () {
    var self = this;
    var every = this.options.pingInterval;
    if (!every) return;
    clearTimeout(this._pingTimer);
    this._pingTimer = setTimeout(function tick() {
      if (self.state !== CONNECTED) return;
      var idle = Date.now() - self._lastSeen;
      if (idle < every) {
        self._pingTimer = setTimeout(tick, every - idle);
        return;
      }
      var ws = self._ws;
      self.ping().then(null, function (err) {
        // No answer: the connection is dead even if the socket looks open.
        if (err.code === 'timeout' && self._ws === ws && ws) {
          try { ws.close(); } catch (e) { /* ignore */ }
          self._lost(ws, 1006, 'ping timeout');
        }
      });
      self._pingTimer = setTimeout(tick, every);
    }, every);
  };

  // _send issues one command. opts.direct sends it on the current socket
  // even before connect is answered (connect, subscribe); otherwise a
  // command issued while not connected waits in the outbox.
  // opts.onReply(err, result), when set, is called as the reply (or the
  // failure) is read, before the Promise settles and before the next
  // message of the same frame is handled: a subscribe reply must take
  // effect before the pushes that follow it.
  proto._send = function (op, fields, opts) {
    var self = this;
    opts = opts || {};
    var id = this._nextId++;
    var msg = {id: id, op: op};
    for (var k in fields) if (fields[k] !== undefined) msg[k] = fields[k];
    var frame = JSON.stringify(msg);
    return new Promise(function (resolve, reject) {
      if (self._closed) {
        reject(DuplexError('closed', 'the client was closed'));
        return;
      }
      var entry = {resolve: resolve, reject: reject, op: op, sent: false, done: false, onReply: opts.onReply};
      entry.timer = setTimeout(function () {
        self._settle(id, DuplexError('timeout', op + ': no reply within ' + (opts.timeout || self.options.timeout) + ' ms'));
      }, opts.timeout || self.options.timeout);
      self._pending[id] = entry;
      if (opts.direct ? self._ws && self._ws.readyState === 1 : self.state === CONNECTED) {
        self._transmit(frame, id, entry);
      } else if (opts.direct) {
        self._settle(id, DuplexError('disconnected', 'not connected'));
      } else if (self._outbox.length >= self.options.outboxSize) {
        self._settle(id, DuplexError('outbox_full', 'not connected and ' + self.options.outboxSize + ' commands already wait'));
      } else {
        self._outbox.push({frame: frame, id: id, entry: entry});
      }
    });
  };

  proto._transmit = function (frame, id, entry) {
    try {
      this._ws.send(frame);
      entry.sent = true;
    } catch (e) {
      if (e && e.code === 'too_large') this._settle(id, DuplexError('too_large', entry.op + ': ' + e.message));
      else this._settle(id, DuplexError('disconnected', 'send failed: ' + (e && e.message)));
    }
  };

  proto._settle = function (id, err, result) {
    var entry = this._pending[id];
    if (!entry) return;
    delete this._pending[id];
    clearTimeout(entry.timer);
    entry.done = true;
    if (entry.onReply) entry.onReply(err, result);
    if (err) entry.reject(err);
    else entry.resolve(result);
  };

  proto._rejectAll = function (code, message) {
    for (var id in this._pending) this._settle(id, DuplexError(code, message));
    this._outbox = [];
  };

  // _onFrame splits a frame into its newline-separated messages.
  proto._onFrame = function (text) {
    var lines = text.split('\n');
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i].trim();
      if (!line) continue;
      var msg;
      try {
        msg = JSON.parse(line);
      } catch (e) {
        this._emit('error', DuplexError('bad_message', 'server sent invalid JSON: ' + line.slice(0, 80)));
        continue;
      }
      this._onMessage(msg);
    }
  };

  proto._onMessage = function (m) {
    if (m === null || typeof m !== 'object') return;
    if (m.id !== undefined) {
      if (m.error) {
        var err = DuplexError(m.error.code || 'internal', m.error.message);
        this._settle(m.id, err);
      } else {
        this._settle(m.id, null, m.result || {});
      }
      return;
    }
    if (m.error) {
      // An error without id: the server could not read a command's id.
      this._emit('error', DuplexError(m.error.code || 'internal', m.error.message));
      return;
    }
    if (typeof m.missed === 'number') {
      this._emit('missed', {missed: m.missed});
      return;
    }
    if (!m.channel) return;
    var sub = this._subs[m.channel];
    if (m.unsubscribed) {
      if (sub) this._serverUnsubscribed(sub, m.unsubscribed.reason || '');
      return;
    }
    if (m.join) {
      if (sub && sub.active) this._emit('join', {channel: m.channel, info: m.join});
      return;
    }
    if (m.leave) {
      if (sub && sub.active) this._emit('leave', {channel: m.channel, info: m.leave});
      return;
    }
    if (typeof m.presence_count === 'number') {
      if (sub && sub.active) this._emit('presence_count', {channel: m.channel, count: m.presence_count});
      return;
    }
    if (m.tick) {
      if (sub && sub.active) this._deliverTick(sub, m.tick);
      return;
    }
    if (sub && sub.active) this._deliver(sub, m, false);
  };

  // _serverUnsubscribed ends a subscription the server's API ended: it is
  // forgotten (not resubscribed after a reconnect); subscribe again to
  // come back, if the server lets you.
  proto._serverUnsubscribed = function (sub, message) {
    delete this._subs[sub.channel];
    sub.active = false;
    sub._settleWaiters(DuplexError('unsubscribed', message));
    var ev = {channel: sub.channel, reason: 'server', message: message};
    this._emit('unsubscribed', ev);
    sub._emit('unsubscribed', ev);
  };

  // OWN_REMEMBERED bounds the own publications a flow-controlled
  // subscription remembers, to skip them when a tick shows them again.
  var OWN_REMEMBERED = 64;

  // _isOwn says whether p was published by this connection.
  proto._isOwn = function (p) {
    return !!(p.info && this.info && p.info.client === this.info.client);
  };

  // _rememberOwn notes an own publication pushed at once, which the
  // channel's tick may show again.
  proto._rememberOwn = function (sub, offset) {
    if (!sub._own) { sub._own = {}; sub._ownOrder = []; }
    sub._own[offset] = true;
    sub._ownOrder.push(offset);
    if (sub._ownOrder.length > OWN_REMEMBERED) delete sub._own[sub._ownOrder.shift()];
  };

  // _deliverTick handles a flow-controlled channel's tick frame: a tick
  // event with the counts, then each publication it shows, in order,
  // except own ones already delivered at once.
  proto._deliverTick = function (sub, t) {
    sub._flow = true;
    var ev = {channel: sub.channel, shown: t.shown || 0, total: t.total || 0, missed: t.missed || 0};
    this._emit('tick', ev);
    sub._emit('tick', ev);
    var list = t.publications || [];
    for (var i = 0; i < list.length; i++) {
      var p = list[i];
      if (p.offset && sub._own && sub._own[p.offset]) continue;
      if (p.offset > sub.offset) sub.offset = p.offset;
      this._emitPublication(sub, p, false, false, true);
    }
  };

  // _deliver emits one publication unless it was seen already; offsets
  // only grow within an epoch. The client's handlers get it first, then
  // the subscription's. latest marks those of a subscribe reply's latest.
  // In a flow-controlled channel the only plain pushes are one's own
  // publications, sent at once (ticks carry everything else, and their
  // offsets may be below the last seen): they are remembered, not
  // checked against the offset.
  proto._deliver = function (sub, p, recovered, latest) {
    if (!recovered && !latest && p.offset && this._isOwn(p)) {
      if (sub._own && sub._own[p.offset]) return;
      this._rememberOwn(sub, p.offset);
      if (sub._flow) {
        if (p.offset > sub.offset) sub.offset = p.offset;
        this._emitPublication(sub, p, false, false, false);
        return;
      }
    }
    if (p.offset && sub.epoch && p.offset <= sub.offset) return;
    if (p.offset) sub.offset = p.offset;
    this._emitPublication(sub, p, recovered, latest, false);
  };

  proto._emitPublication = function (sub, p, recovered, latest, tick) {
    var ev = {
      channel: sub.channel, offset: p.offset, epoch: sub.epoch,
      data: p.data, info: p.info || null, recovered: recovered, latest: !!latest,
      priority: !!p.priority, tick: !!tick
    };
    this._emit('publication', ev);
    sub._emit('publication', ev);
  };

  /**
   * Subscription is one channel's subscription, as subscribe returns it;
   * it lasts across reconnects until unsubscribe() or close().
   *
   * It is a thenable: then/catch settle with the first subscribe result
   * ({offset, epoch, publications?}), as subscribe's Promise always did.
   * Its events (sub.on(name, fn), sub.off(name, fn)) concern its channel
   * only and come right after the client's events of the same name:
   *   publication  {channel, offset, epoch, data, info, recovered, latest}
   *   subscribed   {channel, result, resubscribed, recovered}
   *   error        a DuplexError: the subscribe or a resubscribe was refused
   *   unsubscribed {channel, reason, message?}: 'unsubscribe', 'closed'
   *                (close()), 'server' (the server's API ended it; message
   *                says why), or the code of a refused resubscribe
   */
  function Subscription(client, channel, options) {
    options = options || {};
    var self = this;
    /** The channel's name. */
    this.channel = channel;
    this.recover = options.recover !== false;
    this.latest = options.latest > 0 ? Math.floor(options.latest) : 0;
    this.offset = 0;        // of the last publication seen (or of the reply)
    this.epoch = '';
    this.active = false;    // subscribed on the current socket
    this.first = true;      // no subscribe answered yet
    this.waiters = [];      // the first result's Promise
    this.socket = null;     // the socket the last subscribe went out on
    this._client = client;
    this._handlers = {};
    this._promise = new Promise(function (resolve, reject) { self.waiters.push({resolve: resolve, reject: reject}); });
    // A page that only listens for events need not handle the Promise.
    this._promise.then(null, function () {});
  }

  var subProto = Subscription.prototype;
  subProto.on = on;
  subProto.off = off;
  subProto._emit = emit;

  /** then and catch are those of the first subscribe result's Promise. */
  subProto.then = function (onResult, onError) { return this._promise.then(onResult, onError); };
  subProto['catch'] = function (onError) { return this._promise.then(null, onError); };

  /** unsubscribe ends this subscription, as dx.unsubscribe(channel) does. */
  subProto.unsubscribe = function () { return this._client._unsubscribe(this); };

  subProto._settleWaiters = function (err, result) {
    var waiters = this.waiters;
    this.waiters = [];
    for (var i = 0; i < waiters.length; i++) {
      if (err) waiters[i].reject(err);
      else waiters[i].resolve(result);
    }
  };

  /**
   * subscribe adds a channel and returns its Subscription, a thenable of
   * the first subscribe result ({offset, epoch}). The subscription
   * survives reconnects until unsubscribe(). options:
   *   recover (default true) asks the server, after a reconnect, for the
   *     publications missed meanwhile; turn it off for channels without
   *     history (live:).
   *   latest: n (1 to the namespace's history size) delivers the newest n
   *     kept publications at once, as 'publication' events with latest:
   *     true, before any live one. After a reconnect the client recovers
   *     what it missed; when that is impossible (or with recover: false)
   *     it gets the latest n again, skipping those it has seen, and emits
   *     no 'reload': a ticker shows the latest value on load and after a
   *     reconnect.
   */
  proto.subscribe = function (channel, options) {
    var sub = new Subscription(this, channel, options);
    if (this._subs[channel]) {
      sub._settleWaiters(DuplexError('bad_request', 'already subscribed to ' + channel));
      return sub;
    }
    this._subs[channel] = sub;
    if (this.state === CONNECTED) this._sendSubscribe(sub);
    return sub;
  };

  proto._sendSubscribe = function (sub) {
    var self = this;
    // Once per socket: a page may subscribe from a 'connected' handler
    // while the client is resubscribing everything.
    if (sub.socket === this._ws) return;
    sub.socket = this._ws;
    var fields = {channel: sub.channel};
    var resub = !sub.first;
    if (resub && sub.recover && sub.epoch) fields.recover = {offset: sub.offset, epoch: sub.epoch};
    // Every subscribe asks for latest; with recover the server uses it
    // only when the gap cannot be recovered.
    if (sub.latest) fields.latest = sub.latest;
    var ws = this._ws;
    // The reply is handled as it is read (onReply), before the pushes
    // that follow it in the same frame; the Promise is not needed.
    this._send('subscribe', fields, {direct: true, onReply: function (err, res) {
      if (err) self._subscribeFailed(sub, ws, err);
      else self._subscribed(sub, ws, res, resub);
    }}).then(null, function () {});
  };

  proto._subscribed = function (sub, ws, res, resub) {
    if (this._subs[sub.channel] !== sub || this._ws !== ws) return;
    sub.active = true;
    sub.first = false;
    var recovered = res.recovered;
    var pubs = res.publications || [];
    var i;
    if (recovered === true) {
      // The missed publications, in order (those seen already are
      // skipped); the live pushes that follow come after res.offset.
      for (i = 0; i < pubs.length; i++) this._deliver(sub, pubs[i], true, false);
    } else if (sub.latest) {
      // The newest ones up to res.offset. In the stream seen so far they
      // skip what was seen; in another one (a new epoch, or a stream that
      // lost its end) they all are new.
      if (res.epoch !== sub.epoch || res.offset < sub.offset) sub.offset = 0;
      sub.epoch = res.epoch;
      for (i = 0; i < pubs.length; i++) this._deliver(sub, pubs[i], false, true);
    }
    sub.epoch = res.epoch;
    sub.offset = res.offset;
    var ev = {channel: sub.channel, result: res, resubscribed: resub, recovered: recovered};
    sub._settleWaiters(null, res);
    this._emit('subscribed', ev);
    sub._emit('subscribed', ev);
    if (recovered === false && !sub.latest) {
      this._emit('reload', {channel: sub.channel, offset: res.offset, epoch: res.epoch});
    }
  };

  proto._subscribeFailed = function (sub, ws, err) {
    if (this._subs[sub.channel] !== sub) return;
    err.channel = sub.channel;
    if (err.code === 'disconnected' || err.code === 'timeout') {
      // The reconnect will try again; a timeout on a live socket means
      // the socket is unhealthy.
      if (err.code === 'timeout' && this._ws === ws && ws) {
        try { ws.close(); } catch (e) { /* ignore */ }
        this._lost(ws, 1006, 'subscribe timeout');
      }
      return;
    }
    delete this._subs[sub.channel];
    if (sub.first) {
      // The first subscribe: its Promise tells the page.
      sub._settleWaiters(err);
      sub._emit('error', err);
      return;
    }
    // A resubscribe the server now refuses: drop the subscription.
    this._emit('error', err);
    sub._emit('error', err);
    sub._emit('unsubscribed', {channel: sub.channel, reason: err.code});
  };

  /** unsubscribe removes a channel; resolves once the server agreed (or at once when offline). */
  proto.unsubscribe = function (channel) {
    var sub = this._subs[channel];
    if (!sub) return Promise.resolve({});
    return this._unsubscribe(sub);
  };

  proto._unsubscribe = function (sub) {
    var channel = sub.channel;
    if (this._subs[channel] !== sub) return Promise.resolve({});
    delete this._subs[channel];
    sub.active = false;
    sub._settleWaiters(DuplexError('closed', 'unsubscribed'));
    sub._emit('unsubscribed', {channel: channel, reason: 'unsubscribe'});
    if (this.state !== CONNECTED) return Promise.resolve({});
    return this._send('unsubscribe', {channel: channel}).then(null, function (err) {
      if (err.code === 'not_found' || err.code === 'disconnected') return {};
      throw err;
    });
  };

  /** subscriptions lists the subscribed channels. */
  proto.subscriptions = function () { return Object.keys(this._subs); };

  /**
   * position returns {offset, epoch} of the last publication seen on
   * channel (or of the subscribe result), or null.
   */
  proto.position = function (channel) {
    var sub = this._subs[channel];
    return sub && sub.epoch ? {offset: sub.offset, epoch: sub.epoch} : null;
  };

  /**
   * publish sends data (any JSON value) to channel and resolves with
   * {offset, epoch}. While disconnected it waits in the outbox.
   * options.timeout overrides the default.
   */
  proto.publish = function (channel, data, options) {
    return this._send('publish', {channel: channel, data: data}, options);
  };

  /** presence resolves with {count, clients?} (clients: id → {client, user, name}). */
  proto.presence = function (channel, options) {
    return this._send('presence', {channel: channel}, options);
  };

  /**
   * history resolves with {publications, offset, epoch}: the latest kept
   * publications, or with options.since ({offset, epoch}) those after it.
   * options.limit caps how many. A selection too large for one reply comes
   * in pages (the server marks all but the last with more); history asks
   * for the rest, from the last offset it got, and resolves with them all.
   */
  proto.history = function (channel, options) {
    options = options || {};
    var self = this, got = [];
    function page(since, limit) {
      return self._send('history', {channel: channel, limit: limit, since: since}, options).then(function (res) {
        var pubs = res.publications || [];
        got = got.concat(pubs);
        var left = options.limit ? options.limit - got.length : 1;
        if (res.more && pubs.length && left > 0) {
          var last = pubs[pubs.length - 1];
          return page({offset: last.offset, epoch: res.epoch}, options.limit ? left : undefined);
        }
        res.publications = got;
        delete res.more;
        return res;
      });
    }
    return page(options.since, options.limit);
  };

  /** ping resolves with {} when the server answers. */
  proto.ping = function (options) {
    return this._send('ping', {}, options);
  };

  // ---- the SSE transport ----

  // HEARTBEAT_SLACK_MS is added to twice the server's ping interval: a
  // stream silent for that long (no event, no ": ping") is dead.
  var HEARTBEAT_SLACK_MS = 5000;
  // EMIT_BYTES_UNNAMED is the most UTF-8 bytes one emit carries when the
  // session event does not name the server's limit (max_emit, its
  // WS_MAX_MESSAGE_BYTES): a server older than that field.
  var EMIT_BYTES_UNNAMED = 16384;
  // EMIT_RETRY_MS is how long a rate-limited emit (429 without
  // Retry-After) waits before it is sent again.
  var EMIT_RETRY_MS = 1000;

  /**
   * SSETransport is one SSE connection, shaped like the WebSocket the
   * client otherwise holds (readyState, send, close, onopen, onmessage,
   * onclose), so that everything above it is the same for both:
   *  - the stream, GET url, is read with fetch (EventSource hides the
   *    server's ": ping" comments, the heartbeat, and the HTTP status);
   *    its first event, session, opens it; each default event is one
   *    message; the close event ends it with the server's close code;
   *  - send queues a command line; the queue goes out as POST
   *    emitURL?session=<sid>, one request in flight at a time (the server
   *    handles them in order), the lines waiting meanwhile joined by
   *    newlines, as many as fit in the server's limit (max_emit of the
   *    session event, in UTF-8 bytes). A line over the limit alone is not
   *    sent: send throws an Error whose code is 'too_large'. Replies come
   *    on the stream. An emit refused because the session is gone (404,
   *    410) ends the stream so the client reconnects; 403 (another
   *    identity) ends it for good (1008); 413 as a socket ends a too-big
   *    message (1009).
   * onclose gets {code, reason, status}: status is the HTTP status of a
   * stream refused before it started (400, 401, 403, 429, 503), else 0.
   * It is driven by the browser's event loop only (single-threaded).
   */
  function SSETransport(url, emitURL, token) {
    this.readyState = 0;      // 0 opening, 1 open, 3 closed (as WebSocket)
    this.session = '';
    /** token goes with every emit (Authorization); refresh replaces it. */
    this.token = token || null;
    this.onopen = this.onmessage = this.onclose = this.onerror = this.onheartbeat = null;
    this._emitURL = emitURL;
    this._queue = [];         // {line, bytes}: command lines not yet posted
    this._maxEmit = EMIT_BYTES_UNNAMED; // the most UTF-8 bytes of an emit
    this._posting = false;    // an emit is in flight
    this._retryTimer = null;
    this._silenceMs = 0;      // 0 until the session event names the ping interval
    this._silenceTimer = null;
    this._buf = '';           // text read but not yet a whole line
    this._event = '';         // the event being read: its name and data lines
    this._data = [];
    this._abort = new AbortController();
    this._start(url);
  }

  /** supported says whether this browser can read a stream with fetch. */
  SSETransport.supported = function () {
    return typeof global.fetch === 'function' && typeof global.AbortController === 'function' &&
      typeof global.TextDecoder === 'function' && typeof global.ReadableStream === 'function';
  };

  var sseProto = SSETransport.prototype;

  sseProto._start = function (url) {
    var self = this;
    global.fetch(url, {
      headers: {Accept: 'text/event-stream'}, credentials: 'same-origin',
      cache: 'no-store', signal: this._abort.signal
    }).then(function (res) {
      if (self.readyState === 3) return;
      if (res.status !== 200 || !res.body) {
        errorText(res).then(function (text) {
          self._finish(1006, 'HTTP ' + res.status + (text ? ': ' + text : ''), res.status);
        });
        return;
      }
      var reader = res.body.getReader();
      var decoder = new global.TextDecoder();
      var pump = function () {
        reader.read().then(function (chunk) {
          if (self.readyState === 3) return;
          if (chunk.done) {
            self._feed(decoder.decode());
            self._finish(1006, 'stream ended');
            return;
          }
          self._alive();
          self._feed(decoder.decode(chunk.value, {stream: true}));
          pump();
        }, function () { self._finish(1006, 'stream failed'); });
      };
      pump();
    }, function () { self._finish(1006, 'stream failed'); });
  };

  // errorText resolves with the "error" of a JSON error body, or ''.
  function errorText(res) {
    return res.text().then(function (body) {
      try { return String(JSON.parse(body).error || ''); } catch (e) { return ''; }
    }, function () { return ''; });
  }

  // _alive notes that the stream is not silent, and rearms its deadline.
  sseProto._alive = function () {
    var self = this;
    if (this.onheartbeat) this.onheartbeat();
    if (!this._silenceMs) return;
    clearTimeout(this._silenceTimer);
    this._silenceTimer = setTimeout(function () { self._finish(1006, 'heartbeat timeout'); }, this._silenceMs);
  };

  // _feed splits what was read into lines (ended by \n, \r\n or \r; a
  // \r at the end may be the first half of \r\n and waits).
  sseProto._feed = function (text) {
    var buf = this._buf + text;
    var pos = 0;
    while (pos < buf.length && this.readyState !== 3) {
      var nl = buf.indexOf('\n', pos);
      var cr = buf.indexOf('\r', pos);
      var end = nl < 0 ? cr : (cr < 0 ? nl : Math.min(nl, cr));
      if (end < 0 || (end === cr && end === buf.length - 1)) break;
      var line = buf.slice(pos, end);
      pos = end + (end === cr && buf.charAt(end + 1) === '\n' ? 2 : 1);
      this._line(line);
    }
    this._buf = buf.slice(pos);
  };

  // _line handles one line of the event stream format.
  sseProto._line = function (line) {
    if (line === '') {
      if (this._data.length) this._dispatch(this._event || 'message', this._data.join('\n'));
      this._event = '';
      this._data = [];
      return;
    }
    if (line.charAt(0) === ':') return; // a comment: the heartbeat (_alive saw it)
    var colon = line.indexOf(':');
    var field = colon < 0 ? line : line.slice(0, colon);
    var value = colon < 0 ? '' : line.slice(colon + (line.charAt(colon + 1) === ' ' ? 2 : 1));
    if (field === 'event') this._event = value;
    else if (field === 'data') this._data.push(value);
  };

  sseProto._dispatch = function (event, data) {
    var m;
    if (event === 'session') {
      try { m = JSON.parse(data); } catch (e) { m = null; }
      if (!m || typeof m.session !== 'string' || !m.session) {
        this._finish(1006, 'bad session event');
        return;
      }
      this.session = m.session;
      if (m.max_emit > 0) this._maxEmit = m.max_emit;
      this._silenceMs = m.ping > 0 ? 2 * m.ping * 1000 + HEARTBEAT_SLACK_MS : 0;
      this._alive();
      this.readyState = 1;
      if (this.onopen) this.onopen();
    } else if (event === 'close') {
      try { m = JSON.parse(data); } catch (e) { m = {}; }
      this._finish(typeof m.code === 'number' ? m.code : 1006, typeof m.reason === 'string' ? m.reason : '');
    } else if (event === 'message' && this.readyState === 1) {
      if (this.onmessage) this.onmessage({data: data});
    }
  };

  /**
   * send queues one command line (or several joined by newlines). It
   * throws if the stream is not open, or (with code 'too_large') if the
   * line is more than one emit may carry: the server would refuse it, and
   * the lines batched with it, with 413.
   */
  sseProto.send = function (line) {
    if (this.readyState !== 1) throw new Error('the stream is not open');
    var bytes = utf8Bytes(line);
    if (bytes > this._maxEmit) {
      var err = new Error(bytes + ' bytes, over the ' + this._maxEmit + ' one message may have (WS_MAX_MESSAGE_BYTES)');
      err.code = 'too_large';
      throw err;
    }
    this._queue.push({line: line, bytes: bytes});
    this._post();
  };

  // utf8Bytes is the length of s in UTF-8, as fetch sends it (a lone
  // surrogate becomes U+FFFD, 3 bytes), counted without encoding it.
  function utf8Bytes(s) {
    var n = 0;
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c < 0xdc00 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 4; i++; }
      else n += 3;
    }
    return n;
  }

  // _post sends the waiting lines, unless an emit is in flight.
  sseProto._post = function () {
    var self = this;
    if (this._posting || this._retryTimer || !this._queue.length || this.readyState !== 1) return;
    var first = this._queue.shift();
    var body = first.line, bytes = first.bytes;
    while (this._queue.length && bytes + 1 + this._queue[0].bytes <= this._maxEmit) {
      var next = this._queue.shift();
      body += '\n' + next.line;
      bytes += 1 + next.bytes;
    }
    this._posting = true;
    var headers = {};
    if (this.token) headers.Authorization = 'Bearer ' + this.token;
    var url = this._emitURL + (this._emitURL.indexOf('?') >= 0 ? '&' : '?') + 'session=' + encodeURIComponent(this.session);
    global.fetch(url, {method: 'POST', body: body, headers: headers, credentials: 'same-origin', cache: 'no-store'}).then(function (res) {
      self._posting = false;
      if (self.readyState === 3) return;
      if (res.status >= 200 && res.status < 300) {
        self._post();
      } else if (res.status === 429) {
        // Not taken: the same lines go again, first, after the wait.
        self._queue.unshift({line: body, bytes: bytes});
        var wait = parseInt(res.headers.get('Retry-After'), 10);
        self._retryTimer = setTimeout(function () {
          self._retryTimer = null;
          self._post();
        }, wait > 0 ? wait * 1000 : EMIT_RETRY_MS);
      } else {
        self._finish(emitCloseCode(res.status), 'emit refused: HTTP ' + res.status);
      }
    }, function () {
      self._posting = false;
      // The lines may or may not have arrived: as a socket that died.
      self._finish(1006, 'emit failed');
    });
  };

  // emitCloseCode is the socket close code that stands for an emit's
  // refusal: the same reconnect rules follow from it.
  function emitCloseCode(status) {
    if (status === 403) return 1008; // another identity: final
    if (status === 413) return 1009; // too big, as on a socket
    if (status === 400) return 1007;
    return 1006;                     // 404, 410 the session is gone; 5xx
  }

  /**
   * close ends the stream (the server then ends the session); onclose
   * follows asynchronously, as a WebSocket's does.
   */
  sseProto.close = function (code, reason) {
    this._finish(code || 1005, reason || '', 0, true);
  };

  sseProto._finish = function (code, reason, status, later) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    clearTimeout(this._silenceTimer);
    clearTimeout(this._retryTimer);
    this._silenceTimer = this._retryTimer = null;
    this._queue = [];
    try { this._abort.abort(); } catch (e) { /* already ended */ }
    var self = this;
    var ev = {code: code, reason: reason, status: status || 0};
    var fire = function () { if (self.onclose) self.onclose(ev); };
    if (later) setTimeout(fire, 0);
    else fire();
  };

  Duplex.SSETransport = SSETransport;

  global.Duplex = Duplex;
}(window));
