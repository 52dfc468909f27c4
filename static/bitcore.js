/*
 * bitcore.js: send product-analytics events to a bitcore server's /track endpoint.
 *
 *   bitcore.init({endpoint: "https://stats.example.com/track", key: "WRITE_KEY"});
 *   bitcore.identify(123, "SIGNATURE_FROM_YOUR_BACKEND");   // sig only if the server asks for one
 *   bitcore.identify("usr_8f3a");  // string and 64-bit ids: servers with BITCORE_ID_MAPPING=1
 *   bitcore.track("song:played");
 *
 * Events are queued and sent in batches: every few seconds, when a batch is full, and when the page is
 * hidden or left (pagehide / visibilitychange), with navigator.sendBeacon so the browser delivers them
 * after the page is gone (fetch with keepalive where sendBeacon is missing or refuses). Events tracked
 * before identify() wait for it; whatever is still unidentified when the page goes away is dropped.
 * Each batch carries a request_id: a batch sent by fetch that fails (no answer, a 5xx or a 429) is
 * sent again, at most twice, with the same id, so the server writes and counts it once.
 * Nothing here ever throws into the host page: every entry point is wrapped in try/catch.
 * Plain ES5, no build step, no dependencies.
 */
(function (global) {
  "use strict";

  var state = {
    endpoint: null,
    key: null,
    uid: null,
    sig: null,
    queue: [], // identified events, ready to send
    waiting: [], // events tracked before identify()
    timer: null,
    flushInterval: 5000,
    maxBatch: 100,
    retryDelay: 2000, // ms before the first resend; the second waits four times as long
    listening: false
  };
  var MAX_RETRIES = 2;
  var sent = 0;

  // The names the server accepts: letters, digits and ":_.-", at most 120 characters.
  var NAME = /^[A-Za-z0-9:_.\-]{1,120}$/;
  // A string that spells a whole number JavaScript holds exactly is sent as that number (the same
  // user either way); a longer one (a 64-bit id) stays a string, as a number would lose digits.
  var SAFE_DIGITS = /^(0|[1-9][0-9]{0,15})$/;
  var CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

  // The uid to send for identify()'s argument, or null for one no server accepts: a whole number
  // >= 0, or a string of 1 to 128 printable characters (taken by servers that map ids).
  function userId(uid) {
    if (typeof uid === "number") {
      return isFinite(uid) && Math.floor(uid) === uid && uid >= 0 && uid <= 9007199254740991
        ? uid
        : null;
    }
    if (typeof uid !== "string" || uid.length < 1 || uid.length > 128 || CONTROL.test(uid)) {
      return null;
    }
    if (SAFE_DIGITS.test(uid) && Number(uid) <= 9007199254740991) {
      return Number(uid);
    }
    return uid;
  }

  function guard(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (e) {
        return undefined;
      }
    };
  }

  function url() {
    var sep = state.endpoint.indexOf("?") === -1 ? "?" : "&";
    return state.endpoint + sep + "k=" + encodeURIComponent(state.key);
  }

  // A request id for one batch (at most 64 of [A-Za-z0-9_.:-], as the server takes): the time,
  // a count and randomness, so two pages or two batches of one page never share one.
  function requestId() {
    sent += 1;
    return (
      Date.now().toString(36) + "-" + sent.toString(36) + "-" +
      Math.random().toString(36).slice(2, 12)
    );
  }

  function send(body, preferBeacon, attempt) {
    attempt = attempt || 0;
    var target = url();
    if (preferBeacon && global.navigator && typeof global.navigator.sendBeacon === "function") {
      try {
        // A string is sent as text/plain: a "simple" cross-origin request, no preflight needed.
        if (global.navigator.sendBeacon(target, body)) {
          return;
        }
      } catch (e) {
        /* fall through to fetch */
      }
    }
    if (typeof global.fetch === "function") {
      global
        .fetch(target, {
          method: "POST",
          body: body,
          keepalive: true,
          mode: "cors",
          credentials: "omit",
          headers: { "Content-Type": "text/plain;charset=UTF-8" }
        })
        .then(function (response) {
          if (response.status >= 500 || response.status === 429) {
            retry(body, attempt);
          }
        })
        ["catch"](function () {
          retry(body, attempt);
        });
    }
  }

  // Send the same body (the same request_id) again later, by fetch, unless it was sent enough.
  function retry(body, attempt) {
    if (attempt >= MAX_RETRIES) {
      return;
    }
    global.setTimeout(guard(function () {
      send(body, false, attempt + 1);
    }), state.retryDelay * Math.pow(4, attempt));
  }

  function flush(preferBeacon) {
    if (state.timer !== null) {
      global.clearTimeout(state.timer);
      state.timer = null;
    }
    if (!state.endpoint || !state.key) {
      return;
    }
    while (state.queue.length) {
      var batch = state.queue.splice(0, state.maxBatch);
      send(JSON.stringify({ request_id: requestId(), events: batch }), preferBeacon);
    }
  }

  function schedule() {
    if (state.queue.length >= state.maxBatch) {
      flush(false);
    } else if (state.timer === null && state.queue.length) {
      state.timer = global.setTimeout(guard(function () {
        state.timer = null;
        flush(false);
      }), state.flushInterval);
    }
  }

  function stamp(item) {
    item.uid = state.uid;
    if (state.sig) {
      item.sig = state.sig;
    }
    return item;
  }

  var onLeave = guard(function () {
    flush(true);
  });
  var onVisibility = guard(function () {
    if (global.document && global.document.visibilityState === "hidden") {
      flush(true);
    }
  });

  var api = {
    init: guard(function (options) {
      options = options || {};
      state.endpoint = String(options.endpoint || "/track");
      state.key = options.key ? String(options.key) : null;
      if (options.flushInterval > 0) {
        state.flushInterval = Number(options.flushInterval);
      }
      if (options.retryDelay > 0) {
        state.retryDelay = Number(options.retryDelay);
      }
      if (options.maxBatch > 0) {
        state.maxBatch = Math.min(500, Math.floor(options.maxBatch));
      }
      if (!state.listening && typeof global.addEventListener === "function") {
        global.addEventListener("pagehide", onLeave);
        global.document.addEventListener("visibilitychange", onVisibility);
        state.listening = true;
      }
    }),
    identify: guard(function (uid, sig) {
      var id = userId(uid);
      if (id === null) {
        return;
      }
      state.uid = id;
      state.sig = sig ? String(sig) : null;
      while (state.waiting.length) {
        state.queue.push(stamp(state.waiting.shift()));
      }
      schedule();
    }),
    track: guard(function (event, options) {
      // The server refuses a whole batch for one bad name: drop bad names here instead.
      if (typeof event !== "string" || !NAME.test(event) || event.indexOf("bitop_") === 0) {
        return;
      }
      var item = { event: event };
      if (options && options.unique === true) {
        item.unique = true;
      }
      if (options && options.track_hourly === true) {
        item.track_hourly = true;
      }
      if (state.uid === null) {
        if (state.waiting.length < 1000) {
          state.waiting.push(item);
        }
        return;
      }
      if (state.queue.length < 5000) {
        state.queue.push(stamp(item));
      }
      schedule();
    }),
    flush: guard(function () {
      flush(true);
    })
  };

  global.bitcore = api;
})(typeof window !== "undefined" ? window : this);
