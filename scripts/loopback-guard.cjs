'use strict';
// loopback-guard.cjs - a Node preload that keeps the real OpenClaw gateway (and the openclaw CLI)
// from talking to anything but loopback during the interop tests.
//
// Use: NODE_OPTIONS="--require /abs/path/scripts/loopback-guard.cjs" OC_GUARD_LOG=/abs/blocked.log
//
// Why: openclaw 2026.9.6 fetches a hosted plugin catalog (https://clawhub.ai/...) about 2 s after
// "ready", and no config switch turns that off; other outbound features (model catalog, update
// check, telemetry, mDNS) are switched off in config but a missed switch must not leak. The tests
// also run the gateway in a loopback-only network namespace (scripts/in-netns), which is the hard
// guarantee; this guard is the second belt: it refuses before any packet or resolver query exists,
// and it names the caller, so a new outbound feature in a later openclaw shows up in the log.
//
// What it does:
//   * dns.lookup, dns.promises.lookup, dns.resolve*, dns.Resolver#resolve*/reverse for a
//     non-loopback name -> ENOTFOUND, with no resolver query;
//   * net.Socket#connect (under net, tls, http, https, fetch/undici, ws) to a non-loopback host
//     -> the socket is destroyed with ENETUNREACH;
//   * dgram.Socket#send to a non-loopback address (mDNS, ...) -> dropped with ENETUNREACH.
// Loopback names/addresses and unix-domain sockets pass untouched. Each refusal appends one line
// to $OC_GUARD_LOG (default: <os tmpdir>/loopback-guard.log):
//   <iso time> pid=<pid> BLOCKED <kind> <target> :: <short JS stack>
// Child processes inherit NODE_OPTIONS, so the gateway's worker processes are guarded as well.
//
// Based on the logic of the project-external recipe shared/tools/openclaw-gateway/loopback-guard.cjs
// (same hooks), rewritten for this project with a real default log path.
const dns = require('dns');
const net = require('net');
const dgram = require('dgram');
const fs = require('fs');
const os = require('os');
const path = require('path');

const LOG = process.env.OC_GUARD_LOG || path.join(os.tmpdir(), 'loopback-guard.log');

function isLoopback(host) {
  // Node connects to localhost when no host is given.
  if (host === undefined || host === null || host === '') return true;
  const h = String(host).toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) ||
    h === '::1' || h === '0:0:0:0:0:0:0:1' ||
    /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function record(kind, target) {
  try {
    const stack = new Error().stack.split('\n').slice(3, 12).map((l) => l.trim()).join(' | ');
    fs.appendFileSync(LOG,
      `${new Date().toISOString()} pid=${process.pid} BLOCKED ${kind} ${target} :: ${stack}\n`);
  } catch { /* the log is best effort; refusing is what matters */ }
}

function blockedError(code, target) {
  const err = new Error(`${code}: blocked by node-agent loopback guard (${target})`);
  err.code = code;
  err.errno = code === 'ENOTFOUND' ? -3008 : -101;
  err.hostname = target;
  return err;
}

// ---- DNS: refuse before the resolver sees the name.
const origLookup = dns.lookup;
dns.lookup = function guardedLookup(hostname, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  if (!isLoopback(hostname)) {
    record('dns.lookup', hostname);
    process.nextTick(callback, blockedError('ENOTFOUND', hostname));
    return {};
  }
  return origLookup.call(this, hostname, options, callback);
};

const origPromisesLookup = dns.promises.lookup;
dns.promises.lookup = function guardedPromisesLookup(hostname, options) {
  if (!isLoopback(hostname)) {
    record('dns.promises.lookup', hostname);
    return Promise.reject(blockedError('ENOTFOUND', hostname));
  }
  return origPromisesLookup.call(this, hostname, options);
};

function guardResolveFunctions(holder, label, promised) {
  for (const name of Object.keys(holder)) {
    if (!/^resolve/.test(name) || typeof holder[name] !== 'function') continue;
    const orig = holder[name];
    holder[name] = function guardedResolve(hostname, ...rest) {
      if (!isLoopback(hostname)) {
        record(`${label}.${name}`, hostname);
        const err = blockedError('ENOTFOUND', hostname);
        if (promised) return Promise.reject(err);
        const cb = rest[rest.length - 1];
        if (typeof cb === 'function') process.nextTick(cb, err);
        return undefined;
      }
      return orig.call(this, hostname, ...rest);
    };
  }
}
guardResolveFunctions(dns, 'dns', false);
guardResolveFunctions(dns.promises, 'dns.promises', true);

for (const [label, proto, promised] of [
  ['dns.Resolver', dns.Resolver.prototype, false],
  ['dns.promises.Resolver', dns.promises.Resolver.prototype, true],
]) {
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (!/^(resolve|reverse)/.test(name) || typeof proto[name] !== 'function') continue;
    const orig = proto[name];
    proto[name] = function guardedResolverMethod(hostname, ...rest) {
      // A reverse lookup always queries a resolver, whatever the address: refuse them all.
      if (name.startsWith('reverse') || !isLoopback(hostname)) {
        record(`${label}#${name}`, hostname);
        const err = blockedError('ENOTFOUND', hostname);
        if (promised) return Promise.reject(err);
        const cb = rest[rest.length - 1];
        if (typeof cb === 'function') process.nextTick(cb, err);
        return undefined;
      }
      return orig.call(this, hostname, ...rest);
    };
  }
}

// ---- TCP: net, tls, http, https, fetch (undici) and ws all end in net.Socket#connect.
const origConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
  let opts = args[0];
  let host;
  let isPath = false;
  if (Array.isArray(opts)) opts = opts[0]; // node's internal normalized form: [options, cb]
  if (opts && typeof opts === 'object') {
    if (opts.path) isPath = true;
    host = opts.host;
  } else if (typeof opts === 'string' && !/^\d+$/.test(opts)) {
    isPath = true; // connect(path[, cb])
  } else if (typeof args[1] === 'string') {
    host = args[1]; // connect(port, host[, cb])
  }
  if (!isPath && !isLoopback(host)) {
    const port = opts && typeof opts === 'object' ? opts.port : args[0];
    record('net.connect', `${host}:${port}`);
    const err = blockedError('ENETUNREACH', host);
    process.nextTick(() => this.destroy(err));
    return this;
  }
  return origConnect.apply(this, args);
};

// ---- UDP: mDNS and anything else datagram-shaped.
const origSend = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function guardedSend(msg, ...rest) {
  // signatures: (msg[, offset, length], port[, address][, callback]); the address is the last string
  const strings = rest.filter((v) => typeof v === 'string');
  const address = strings.length ? strings[strings.length - 1] : undefined;
  if (address !== undefined && !isLoopback(address)) {
    record('dgram.send', address);
    const cb = rest[rest.length - 1];
    if (typeof cb === 'function') process.nextTick(cb, blockedError('ENETUNREACH', address));
    return;
  }
  return origSend.call(this, msg, ...rest);
};
