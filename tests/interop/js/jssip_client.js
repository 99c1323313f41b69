// One JsSIP user agent driven by the sipedge interop tests, loaded by page.html into
// headless Chromium after the esbuild bundle of jssip (it also loads under Node's require
// for a WebRTC-less client); `emit` reports every event to the test as a plain object.
(function (root) {
  'use strict';

  // What the test needs to know about a SIP message JsSIP received.
  function summary(message) {
    if (!message) return null;
    const out = {
      method: message.method || null,
      status: message.status_code || null,
      via: message.getHeader ? message.getHeader('Via') : null,
    };
    if (message.getHeaders) {
      out.require = message.getHeaders('Require');
      out.contact = message.getHeaders('Contact');
      out.recordRoute = message.getHeaders('Record-Route');
    }
    out.body = message.body || null;
    return out;
  }

  function createClient(JsSIP, emit, opts) {
    const socket = new JsSIP.WebSocketInterface(opts.url);
    const ua = new JsSIP.UA({
      sockets: [socket],
      uri: opts.uri,
      authorization_user: opts.user,
      password: opts.password,
      realm: opts.realm,
      registrar_server: opts.registrar,
      register: opts.register !== false,
      register_expires: opts.expires || 60,
      session_timers: false,
      connection_recovery_min_interval: 30,
      connection_recovery_max_interval: 60,
      user_agent: 'sipedge-interop-jssip',
    });
    let session = null;
    const media = { audio: true, video: false };
    const pcConfig = { iceServers: [] };

    function track(s, direction) {
      session = s;
      emit({ ev: 'session', direction, callId: s._request ? s._request.call_id : null });
      s.on('progress', (e) => emit({ ev: 'progress', status: e.response ? e.response.status_code : null }));
      s.on('accepted', (e) => emit({ ev: 'accepted', message: summary(e.response) }));
      s.on('confirmed', () => emit({ ev: 'confirmed' }));
      s.on('ended', (e) => emit({
        ev: 'ended', originator: e.originator, cause: e.cause,
        isBye: e.cause === JsSIP.C.causes.BYE, message: summary(e.message),
      }));
      s.on('failed', (e) => emit({
        ev: 'failed', originator: e.originator, cause: e.cause, message: summary(e.message),
      }));
      s.on('peerconnection', () => emit({ ev: 'peerconnection' }));
    }

    ua.on('connected', () => emit({ ev: 'connected' }));
    ua.on('disconnected', (e) => emit({ ev: 'disconnected', code: e.code || null, reason: e.reason || null }));
    ua.on('registered', (e) => emit({ ev: 'registered', message: summary(e.response) }));
    ua.on('unregistered', (e) => emit({ ev: 'unregistered', message: summary(e.response) }));
    ua.on('registrationFailed', (e) => emit({
      ev: 'registrationFailed', cause: e.cause, message: summary(e.response),
    }));
    ua.on('newRTCSession', (e) => {
      if (e.originator !== 'remote') return;
      track(e.session, 'incoming');
      emit({ ev: 'incoming', message: summary(e.request) });
      if (opts.autoAnswer) {
        e.session.answer({ mediaConstraints: media, pcConfig });
      }
    });
    ua.start();

    return {
      call(target) {
        track(ua.call(target, { mediaConstraints: media, pcConfig }), 'outgoing');
      },
      hangup() {
        if (!session) throw new Error('no session to hang up');
        session.terminate();
      },
      stop() {
        ua.stop();
      },
    };
  }

  if (typeof module !== 'undefined' && module.exports) {
    module.exports = { createClient };
  } else {
    root.SipedgeJsSIP = { createClient };
  }
})(typeof globalThis !== 'undefined' ? globalThis : this);
