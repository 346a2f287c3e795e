// SPDX-License-Identifier: Apache-2.0
// loopback.cjs -- preloaded with `node -r` into the peer emulators that bench/run.sh starts
// (kinesalite, kinesis-local).  Both listen on every interface (kinesis-local hard-codes
// 0.0.0.0); the bench must only bind loopback, so any TCP listen on a wildcard or missing host
// is rewritten to 127.0.0.1.  Unix-socket and explicit-host listens pass through unchanged.
'use strict';
const net = require('net');
const WILD = new Set([undefined, null, '', '0.0.0.0', '::', '[::]']);
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a0 = args[0];
  if (a0 !== null && typeof a0 === 'object' && !Array.isArray(a0) && a0.path === undefined &&
      a0.handle === undefined && a0._handle === undefined && a0.fd === undefined) {
    if (WILD.has(a0.host)) args[0] = Object.assign({}, a0, { host: '127.0.0.1' });
  } else if (typeof a0 === 'number' || (typeof a0 === 'string' && /^\d+$/.test(a0))) {
    if (typeof args[1] === 'function' || args.length < 2 || WILD.has(args[1])) {
      if (typeof args[1] === 'function' || args.length < 2) args.splice(1, 0, '127.0.0.1');
      else args[1] = '127.0.0.1';
    }
  }
  return orig.apply(this, args);
};
