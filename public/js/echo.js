// The tutorial's echo page: connect to /ws on the page's own host, show
// "已连接上!" once open, send the input on 发送, and show each reply.
// It reconnects by itself with exponential backoff and full jitter; the
// status line is DuplexUI's (ui.js), worded as on the other pages.
(function () {
  'use strict';

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 10000;

  var $ = DuplexUI.byId;
  var status = DuplexUI.status;
  var result = $('result');
  var form = $('form');
  var input = $('m');

  var ws = null;
  var attempt = 0;

  function socketURL() {
    var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + location.host + '/ws';
  }

  function backoffDelay() {
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
    attempt++;
    return Math.round(Math.random() * ceiling);
  }

  function connect() {
    status.connecting();
    ws = new WebSocket(socketURL());
    ws.binaryType = 'arraybuffer';
    ws.onopen = function () {
      attempt = 0;
      result.textContent = '已连接上!';
      status.connected();
    };
    ws.onmessage = function (ev) {
      if (typeof ev.data === 'string') {
        result.textContent = ev.data;
      } else {
        result.textContent = '收到二进制消息（' + ev.data.byteLength + ' 字节）';
      }
    };
    ws.onclose = function (ev) {
      var delay = backoffDelay();
      status.disconnected(ev.code, delay);
      setTimeout(connect, delay);
    };
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      status.show('尚未连接，消息未发送', 'closed');
      return;
    }
    ws.send(input.value);
  });

  connect();
}());
