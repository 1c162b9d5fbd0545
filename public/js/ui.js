// What every page shows and does the same way, so that the page scripts
// (echo.js, chat.js, live.js, push.js, ticker.js, scores.js) do not each
// repeat it: the
// connection-status line #status with its reconnect wording, the data the
// server gives the page (data-* attributes on <body>, handlers.PageData),
// and a few small DOM helpers. Each page loads it before its own script;
// it defines one global, window.DuplexUI, and touches the page only when
// called.
(function (global) {
  'use strict';

  var doc = global.document;

  // Why a connection closed, for pages that explain it (chat); the code
  // alone says nothing to most people.
  var CLOSE_REASONS = {1001: '服务器重启或关闭', 1008: '发送过于频繁', 1013: '服务器繁忙',
    4000: '被服务器断开', 4001: '登录已过期'};

  // A room's or topic's name: the part of a channel after "chat:",
  // "live:" or "push:", as the server accepts it.
  var ROOM_NAME_RE = /^[A-Za-z0-9_.@-]{1,64}$/;

  function byId(id) { return doc.getElementById(id); }

  // el makes an element; text, if given, goes in as text, never as HTML.
  function el(tag, cls, text) {
    var e = doc.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // clock is the local time of ts (ms since the epoch; now if ts is not a
  // number) as HH:MM, or HH:MM:SS with withSeconds.
  function clock(ts, withSeconds) {
    var d = typeof ts === 'number' ? new Date(ts) : new Date();
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + (withSeconds ? ':' + two(d.getSeconds()) : '');
  }

  // textOf is a publication's data as a line of text: chat and live
  // messages are {text}, but the HTTP API may publish anything.
  function textOf(data) {
    if (typeof data === 'string') return data;
    if (data && typeof data.text === 'string') return data.text;
    return JSON.stringify(data);
  }

  // data is the server's value for key (the attribute data-<key> on
  // <body>, the key spelt as in handlers.PageData: "room-list"), or
  // fallback ('' if not given) when the page has none.
  function data(key, fallback) {
    var value = doc.body.getAttribute('data-' + key);
    if (value !== null) return value;
    return fallback === undefined ? '' : fallback;
  }

  // dataJSON is data(key) parsed as JSON, or fallback when the page has
  // no such value or it is not JSON (which is the server's bug: logged).
  function dataJSON(key, fallback) {
    var value = doc.body.getAttribute('data-' + key);
    if (value === null) return fallback;
    try {
      return JSON.parse(value);
    } catch (e) {
      if (global.console) global.console.error('DuplexUI: data-' + key + ' is not JSON', e);
      return fallback;
    }
  }

  // recall and remember use localStorage, which private windows and
  // strict settings may refuse: then nothing is remembered.
  function recall(key) {
    try { return global.localStorage.getItem(key) || ''; } catch (e) { return ''; }
  }
  function remember(key, value) {
    try { global.localStorage.setItem(key, value); } catch (e) { /* not kept */ }
  }

  // ---- the status line ----

  // show puts text in #status; state ('connecting', 'open' or 'closed')
  // picks its colour in site.css.
  function show(text, state) {
    var line = byId('status');
    line.textContent = text;
    line.className = 'status ' + state;
  }

  // TRANSPORT_NAMES: how #status names the transport in use (duplex.js's
  // dx.transport); SSE is the fallback where WebSocket is blocked.
  var TRANSPORT_NAMES = {websocket: 'WebSocket', sse: 'SSE 备用通道'};

  // connectedText is what #status says while connected, with the
  // transport when the page has one to show.
  function connectedText(transport) {
    return '已连接' + (transport ? '（' + (TRANSPORT_NAMES[transport] || transport) + '）' : '');
  }

  // disconnectedText is what #status says between a close and the next
  // attempt; explain adds why, in words, after the code.
  function disconnectedText(code, delayMs, explain) {
    var why = explain ? '，' + (CLOSE_REASONS[code] || '网络中断') : '';
    return '连接已断开（代码 ' + code + why + '），' + (delayMs / 1000).toFixed(1) + ' 秒后重连…';
  }

  var status = {
    show: show,
    connecting: function () { show('正在连接…', 'connecting'); },
    // connected: transport (optional) is dx.transport.
    connected: function (transport) { show(connectedText(transport), 'open'); },
    disconnected: function (code, delayMs, explain) { show(disconnectedText(code, delayMs, explain), 'closed'); },
    // stopped: the server closed the connection and asked for no reconnect.
    stopped: function (code, reason) { show('连接已被服务器关闭（代码 ' + code + (reason ? '：' + reason : '') + '），不再重连', 'closed'); }
  };

  // follow keeps #status in step with the Duplex client dx (duplex.js),
  // naming the transport in use while connected.
  // options.explain: say why the connection closed.
  function follow(dx, options) {
    var explain = !!(options && options.explain);
    dx.on('connecting', status.connecting);
    dx.on('connected', function () { status.connected(dx.transport); });
    dx.on('disconnected', function (ev) {
      // A negative delay: the page closed the client itself and says
      // what comes next.
      if (ev.delay >= 0) status.disconnected(ev.code, ev.delay, explain);
      else if (ev.final) status.stopped(ev.code, ev.reason);
    });
  }

  global.DuplexUI = {
    byId: byId,
    el: el,
    clock: clock,
    textOf: textOf,
    data: data,
    dataJSON: dataJSON,
    recall: recall,
    remember: remember,
    isRoomName: function (name) { return ROOM_NAME_RE.test(name); },
    status: status,
    follow: follow
  };
}(window));
