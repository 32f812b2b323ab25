/*! Rollwatch browser client, served by Rollwatch at /sdk/rollwatch.js. No dependencies.
 * <script src="https://host/sdk/rollwatch.js" data-key="rpk_…" data-app="web" data-version="1.2.0"
 *         data-channel="stable"></script>
 * Options: data-endpoint (default: the script's origin), data-device-id="off",
 * data-deny="word,word" (scrubbed), data-platform (web), data-arch (other). */
(function () {
  'use strict';
  var w = window;
  if (w.Rollwatch && w.Rollwatch.version) return;
  var MAX_UNITS = 200, MAX_CHARS = 1000000, MAX_BATCH = 100, MAX_BODY = 60000,
    MAX_DETAILS = 32768, MAX_AUTO_CRASHES = 10, BACKOFF_MAX = 300000;
  var tag = document.currentScript || {};
  var ds = tag.dataset || {};
  var endpoint = (ds.endpoint || (tag.src ? new URL(tag.src, location.href).origin : location.origin)).replace(/\/+$/, '');
  var key = ds.key || '';
  var app = text(ds.app, 64), release = {
    name: app, version: text(ds.version, 64), channel: text(ds.channel || 'stable', 32)
  };
  var system = { platform: ds.platform || 'web', arch: ds.arch || 'other' };
  var store = 'rollwatch:queue:' + endpoint + ':' + app, memory = null;
  var deny = (ds.deny || '').split(',').map(function (s) { return s.trim(); }).filter(Boolean);
  var attempt = 0, nextAt = 0, timer = 0, sending = false, autoCrashes = 0;
  var device = deviceId(ds.deviceId !== 'off');

  function warn(m, e) { try { console.warn('rollwatch: ' + m, e || ''); } catch (_) {} }
  function text(v, max) { return String(v == null ? '' : v).replace(/[\x00-\x1f\x7f-\x9f]+/g, ' ').trim().slice(0, max); }
  function hex(n) {
    var b = new Uint8Array(n); crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
  }
  function deviceId(on) {
    try {
      if (!on) { localStorage.removeItem('rollwatch:device'); return null; }
      var id = localStorage.getItem('rollwatch:device');
      if (!/^[0-9a-f]{32}$/.test(id || '')) localStorage.setItem('rollwatch:device', id = hex(16));
      return id;
    } catch (_) { return on ? hex(16) : null; }
  }

  // Scrubbing: the deny list, emails, home-directory user names, IP addresses, and the query
  // strings of URLs (tokens and identities ride there) leave the page as placeholders.
  var EMAIL = /(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}/g;
  var WIN_HOME = /([A-Za-z]:(?:\\\\|\\|\/)(?:Users|Documents and Settings)(?:\\\\|\\|\/))([^\\\/\s"'<>:;|]+)/gi;
  var UNIX_HOME = /(\/(?:home|Users)\/)([^\/\\\s"'<>:;|]+)/g;
  var IPV4 = /(?<![0-9.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![0-9]|\.[0-9])/g;
  var IPV6 = /(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?(?![0-9A-Za-z:]|\.[0-9])/g;
  var URL_QUERY = /(https?:\/\/[^\s?#)"']+)[?#][^\s)"':]*/g;
  function escape(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }
  function scrub(s) {
    s = String(s);
    if (deny.length) s = s.replace(new RegExp(deny.map(escape).join('|'), 'gi'), '<redacted>');
    return s.replace(URL_QUERY, '$1').replace(EMAIL, '<email>')
      .replace(WIN_HOME, '$1<user>').replace(UNIX_HOME, '$1<user>')
      .replace(IPV6, function (c) {
        if (c.split(':').filter(Boolean).length < 2) return c;
        try { new URL('http://[' + c + ']/'); return '<ip>'; } catch (_) { return c; }
      })
      .replace(IPV4, '<ip>');
  }

  // The queue: { p: [pending units], b: [batches] } in localStorage, shared by the app's tabs.
  // A unit is { r: report } or { u: usage }; a batch { k: Idempotency-Key, r: [reports] } or
  // { k, u: summed usage } keeps its key until it is answered, so a resend is never counted twice.
  function load() {
    try { var q = JSON.parse(localStorage.getItem(store)); if (q && q.p && q.b) return q; } catch (_) {}
    return memory || { p: [], b: [] };
  }
  function size(q) { return JSON.stringify(q).length; }
  function units(q) { return q.b.reduce(function (n, b) { return n + (b.r ? b.r.length : 1); }, q.p.length); }
  function save(q) {
    // The oldest go first: formed batches (older than anything pending), then pending units.
    while ((units(q) > MAX_UNITS || size(q) > MAX_CHARS) && (q.b.length || q.p.length)) {
      if (q.b.length) q.b.shift(); else q.p.shift();
      warn('queue full, dropped the oldest reports');
    }
    memory = q;
    for (var i = 0; i < 20; i++) {
      try { localStorage.setItem(store, JSON.stringify(q)); return; } catch (e) {
        if (!(q.b.length || q.p.length)) return;
        if (q.b.length) q.b.shift(); else q.p.shift(); // over the storage quota
      }
    }
  }
  function form(q) {
    var usage = {}, chunk = [], chars = 0;
    q.p.forEach(function (unit) {
      if (unit.u) {
        var g = JSON.stringify([unit.u.application, unit.u.system, unit.u.kind]);
        if (usage[g]) usage[g].count += unit.u.count; else q.b.push({ k: hex(16), u: usage[g] = unit.u });
        return;
      }
      var n = JSON.stringify(unit.r).length + 1;
      if (chunk.length && (chunk.length >= MAX_BATCH || chars + n > MAX_BODY)) { q.b.push({ k: hex(16), r: chunk }); chunk = []; chars = 0; }
      chunk.push(unit.r); chars += n;
    });
    if (chunk.length) q.b.push({ k: hex(16), r: chunk });
    q.p = [];
  }
  function put(unit) { var q = load(); q.p.push(unit); save(q); schedule(0); }

  function details(d) {
    if (d == null) return Promise.resolve(null);
    var s = d instanceof Error ? d.name + ': ' + d.message + '\n' + (d.stack || '') : typeof d === 'string' ? d : JSON.stringify(d);
    s = scrub(s.slice(0, MAX_DETAILS));
    if (!w.CompressionStream) return Promise.resolve(null); // the count still lands
    var gz = new Blob([s]).stream().pipeThrough(new CompressionStream('gzip'));
    return new Response(gz).arrayBuffer().then(function (buf) {
      var b = new Uint8Array(buf), bin = '';
      for (var i = 0; i < b.length; i += 8192) bin += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
      return { encoding: 'gzip', data: btoa(bin) };
    });
  }
  function report(type, reason, d) {
    reason = text(scrub(reason == null ? '' : reason), 256) || 'unknown';
    var r = { application: release, system: system, event: { type: type, reason: reason } };
    return details(d).catch(function () { return null; }).then(function (packed) {
      if (packed) r.details = packed;
      put({ r: r });
    });
  }
  function usage(kind) { put({ u: { application: release, system: system, kind: kind, count: 1 } }); }

  // Sending: one tab at a time (Web Locks), each batch by fetch, retried with backoff and jitter
  // after network errors, 408/425/429/5xx, honouring Retry-After.
  function retryable(s) { return s === 408 || s === 425 || s === 429 || s >= 500 || s < 200 || (s >= 300 && s < 400); }
  function retryAfter(res) {
    var v = res && res.headers.get('Retry-After');
    if (!v) return null;
    var s = Number(v), at = Date.parse(v);
    var ms = isFinite(s) ? s * 1000 : isFinite(at) ? at - Date.now() : null;
    return ms == null ? null : Math.max(0, ms) + Math.random() * Math.min(1000, 0.1 * ms);
  }
  function backoff() { return Math.min(BACKOFF_MAX, 1000 * Math.pow(2, Math.min(attempt++, 20))) * (0.5 + Math.random() / 2); }
  function schedule(ms) { clearTimeout(timer); timer = setTimeout(flush, Math.max(ms, nextAt - Date.now(), 0)); }
  function path(b) { return b.r ? '/reports/ingest/batch' : '/reports/usage'; }
  function body(b) { return JSON.stringify(b.r ? { reports: b.r } : b.u); }
  function headers(b) {
    var h = { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json', 'Idempotency-Key': b.k };
    if (device) h['X-Device-ID'] = device;
    return h;
  }
  function settle(b, res, answer) {
    var q = load(), i = q.b.map(function (x) { return x.k; }).indexOf(b.k);
    if (i < 0) return; // dropped meanwhile
    var keep = [];
    if (res.ok && b.r) {
      var results = (answer && answer.results) || [];
      b.r.forEach(function (r, j) {
        var s = results[j] ? results[j].status : 202;
        if (s >= 200 && s < 300) return;
        if (retryable(s)) keep.push(r); else warn('a report was refused (' + s + ')', results[j].error);
      });
    } else if (!res.ok && retryable(res.status)) {
      throw { delay: retryAfter(res) };
    } else if (!res.ok) {
      warn('the server refused ' + (b.r ? b.r.length : 1) + ' report(s) with ' + res.status, answer && answer.error);
    }
    if (keep.length) q.b[i] = { k: hex(16), r: keep }; else q.b.splice(i, 1);
    save(q);
    if (keep.length) throw { delay: retryAfter(res) };
  }
  function sendAll() {
    var q = load(); form(q); save(q);
    var b = q.b[0];
    if (!b) return Promise.resolve();
    return fetch(endpoint + path(b), { method: 'POST', headers: headers(b), body: body(b), credentials: 'omit', mode: 'cors' })
      .then(function (res) {
        return res.json().catch(function () { return null; }).then(function (answer) { settle(b, res, answer); });
      }, function () { throw { delay: null }; })
      .then(sendAll);
  }
  function flush() {
    if (sending || !key || !units(load())) return Promise.resolve(!units(load()));
    if (Date.now() < nextAt) { schedule(0); return Promise.resolve(false); }
    sending = true;
    var run = function (lock) {
      if (lock === null) { schedule(1000); return false; } // another tab is sending
      return sendAll().then(function () { attempt = 0; nextAt = 0; return true; }, function (r) {
        nextAt = Date.now() + (r && r.delay != null ? r.delay : backoff());
        schedule(0);
        return false;
      });
    };
    var done = navigator.locks ? navigator.locks.request(store, { ifAvailable: true }, run) : Promise.resolve(run());
    return done.then(function (ok) {
      sending = false;
      if (ok && units(load())) schedule(0); // queued while the last answer was on its way
      return ok;
    }, function (e) { sending = false; warn('send failed', e); return false; });
  }
  // The page is going away: hand every queued batch to the browser. sendBeacon sets no headers,
  // so the key, Idempotency-Key and device id ride in the query; nothing leaves the queue, and
  // the next page load resends each batch under the same key, which the server answers without
  // counting it again.
  function beacon() {
    if (!navigator.sendBeacon || !key) return;
    var q = load(); form(q); save(q);
    for (var i = 0; i < q.b.length; i++) {
      var b = q.b[i], qs = '?key=' + encodeURIComponent(key) + '&idempotency_key=' + b.k + (device ? '&device_id=' + device : '');
      if (!navigator.sendBeacon(endpoint + path(b) + qs, body(b))) return; // over the beacon quota
    }
  }

  function safe(f) { return function () { try { return f.apply(null, arguments); } catch (e) { warn('', e); } }; }
  function capture(error, fallback, where) {
    if (autoCrashes++ >= MAX_AUTO_CRASHES) return;
    var name = error && error.name ? error.name : fallback;
    var d = error && error.stack ? error.name + ': ' + error.message + '\n' + error.stack
      : error instanceof Error ? error.name + ': ' + error.message : String(error);
    report('crash', name, d + (where ? '\n' + where : ''));
  }

  w.Rollwatch = {
    version: '0.1.0',
    crash: safe(function (reason, d) { return report('crash', reason, d); }),
    updateFailed: safe(function (reason, d) { return report('update_failed', reason, d); }),
    installFailed: safe(function (reason, d) { return report('install_failed', reason, d); }),
    updateSucceeded: safe(function () { usage('update_succeeded'); }),
    installSucceeded: safe(function () { usage('install_succeeded'); }),
    flush: safe(flush),
    pending: safe(function () { return units(load()); })
  };
  if (!key || !release.name || !release.version) {
    warn('data-key, data-app and data-version are needed; nothing is reported');
    return;
  }
  w.addEventListener('error', safe(function (e) {
    if (e.target && e.target !== w) return; // a resource that failed to load, not a crash
    capture(e.error, 'ScriptError', e.filename ? e.filename + ':' + e.lineno + ':' + e.colno : '');
  }));
  w.addEventListener('unhandledrejection', safe(function (e) { capture(e.reason, 'UnhandledRejection', 'unhandled promise rejection'); }));
  w.addEventListener('pagehide', safe(beacon));
  w.addEventListener('online', safe(function () { nextAt = 0; schedule(0); }));
  safe(usage)('session');
})();
