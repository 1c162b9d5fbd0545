// The tutorial's echo page: connect to /ws on the page's own host, show
// "已连接上!" once open, send the input on 发送, and show each reply.
// It reconnects by itself with exponential backoff and full jitter.
(function () {
  'use strict';

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 10000;

  var result = document.getElementById('result');
  var status = document.getElementById('status');
  var form = document.getElementById('form');
  var input = document.getElementById('m');

  var ws = null;
  var attempt = 0;

  function socketURL() {
    var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + location.host + '/ws';
  }

  function setStatus(text, state) {
    status.textContent = text;
    status.className = 'status ' + state;
  }

  function backoffDelay() {
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
    attempt++;
    return Math.round(Math.random() * ceiling);
  }

  function connect() {
    setStatus('正在连接…', 'connecting');
    ws = new WebSocket(socketURL());
    ws.binaryType = 'arraybuffer';
    ws.onopen = function () {
      attempt = 0;
      result.textContent = '已连接上!';
      setStatus('已连接', 'open');
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
      setStatus('连接已断开（代码 ' + ev.code + '），' + (delay / 1000).toFixed(1) + ' 秒后重连…', 'closed');
      setTimeout(connect, delay);
    };
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      setStatus('尚未连接，消息未发送', 'closed');
      return;
    }
    ws.send(input.value);
  });

  connect();
}());
