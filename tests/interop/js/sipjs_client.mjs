// One SIP.js user agent in plain Node for the sipedge interop tests: no WebRTC, a
// session description handler that offers a fixed plain-RTP SDP and accepts any answer.
import { Inviter, Registerer, RegistererState, SessionState, UserAgent } from 'sip.js';

const OFFER = [
  'v=0',
  'o=sipjs 1 1 IN IP4 127.0.0.1',
  's=-',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 7100 RTP/AVP 0',
  'a=rtpmap:0 PCMU/8000',
  'a=sendrecv',
  '',
].join('\r\n');

// The SessionDescriptionHandler interface of SIP.js, reduced to signalling only.
class FixedSdp {
  constructor() { this.remote = null; }
  close() {}
  getDescription() { return Promise.resolve({ body: OFFER, contentType: 'application/sdp' }); }
  hasDescription(contentType) { return contentType === 'application/sdp'; }
  setDescription(sdp) { this.remote = sdp; return Promise.resolve(); }
  sendDtmf() { return false; }
  rollbackDescription() { return Promise.resolve(); }
}

function summary(message) {
  if (!message) return null;
  return {
    status: message.statusCode || null,
    method: message.method || null,
    via: message.getHeader ? message.getHeader('via') : null,
    require: message.getHeaders ? message.getHeaders('require') : [],
  };
}

export function createClient(emit, opts) {
  const ua = new UserAgent({
    uri: UserAgent.makeURI(opts.uri),
    transportOptions: { server: opts.url, traceSip: true },
    authorizationUsername: opts.user,
    authorizationPassword: opts.password,
    sessionDescriptionHandlerFactory: () => new FixedSdp(),
    userAgentString: 'sipedge-interop-sipjs',
    logBuiltinEnabled: false,
    logConnector: (level, category, label, content) => {
      process.stderr.write(`[sipjs ${level} ${category}] ${content}\n`);
    },
    delegate: {
      onConnect: () => emit({ ev: 'connected' }),
      onDisconnect: (error) => emit({ ev: 'disconnected', reason: error ? String(error) : null }),
    },
  });
  const registerer = new Registerer(ua, { expires: opts.expires || 60 });
  let session = null;

  registerer.stateChange.addListener((state) => {
    if (state === RegistererState.Registered) emit({ ev: 'registered' });
    if (state === RegistererState.Unregistered) emit({ ev: 'unregistered' });
  });

  ua.start().then(() => {
    if (opts.register === false) return;
    registerer.register({
      requestDelegate: {
        onAccept: (r) => emit({ ev: 'registerAccepted', message: summary(r.message) }),
        onReject: (r) => emit({ ev: 'registrationFailed', message: summary(r.message) }),
      },
    });
  }).catch((err) => emit({ ev: 'error', where: 'start', error: String(err) }));

  return {
    call(target) {
      const inviter = new Inviter(ua, UserAgent.makeURI(target));
      session = inviter;
      inviter.stateChange.addListener((state) => {
        if (state === SessionState.Established) emit({ ev: 'confirmed' });
        if (state === SessionState.Terminated) emit({ ev: 'ended' });
      });
      inviter.invite({
        requestDelegate: {
          onProgress: (r) => emit({ ev: 'progress', status: r.message.statusCode }),
          onAccept: (r) => emit({ ev: 'accepted', message: summary(r.message) }),
          onReject: (r) => emit({ ev: 'failed', message: summary(r.message) }),
        },
      }).catch((err) => emit({ ev: 'error', where: 'invite', error: String(err) }));
    },
    hangup() {
      if (!session) throw new Error('no session to hang up');
      session.bye({
        requestDelegate: { onAccept: (r) => emit({ ev: 'byeAccepted', message: summary(r.message) }) },
      });
    },
    // Abort the WebSocket's TCP connection with a reset, as when the host or process
    // vanishes: no WebSocket close, no un-REGISTER, and no TIME_WAIT left on our port.
    drop() {
      const socket = ua.transport.ws && ua.transport.ws._socket;
      if (!socket) throw new Error('no WebSocket connection to drop');
      const port = socket.localPort;
      // The reset is sent when libuv closes the handle, a loop turn later: answer only
      // then, or a kill right after this reply closes the socket with a FIN instead and
      // leaves the port in TIME_WAIT.
      const closed = new Promise((resolve) => socket.once('close', () => resolve(port)));
      socket.resetAndDestroy();
      return closed;
    },
    stop() {
      return registerer.unregister()
        .then(() => null)
        .catch((err) => emit({ ev: 'error', where: 'unregister', error: String(err) }));
    },
  };
}
