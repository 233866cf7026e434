"""mutants.py: the mutants of the mutation test. Each is one named violation of spec/pairing.md,
made by rewriting the traffic between the runner and the reference gateway (wsproxy.py) or by
what the restart command does to the state directory (restart.py); the gateway itself is never
changed. Each has the requirement it breaks and a one-line description; `alive` gives the reason
when the suite is known not to catch it.

A mutant subclasses Mutant and overrides the hooks it needs (see Mutant). The helpers below build
the common shapes: a refusal taken as an acceptance, a close rewritten, events dropped, an answer
rewritten, a request answered by the proxy, request headers rewritten."""
import asyncio
import glob
import json
import os
import uuid

import ed25519
from wsproxy import Msg, now_ms

REGISTRY = []


class Mutant:
    name = ''
    req = ''
    desc = ''
    alive = None  # why the suite cannot catch it, when that is known and accepted
    config = ()  # gateway setups it needs: 'ticks', 'max-pending-2'
    proxy = None  # the wsproxy.Proxy, set when the proxy starts

    def headers(self, c, lines):
        """The HTTP upgrade request's header lines, on their way to the gateway."""
        return lines

    def opened(self, c):
        """The WebSocket of c is open on both sides."""

    def client_msg(self, c, m):
        """A message from the client: None relays it, a list relays those messages instead."""
        return None

    def gateway_msg(self, c, m):
        """A message from the gateway: None relays it, a list relays those messages instead."""
        return None

    def gateway_close(self, c, code, reason):
        """The gateway closed c: None relays the close, (code, reason) relays another one,
        False keeps the client open without telling it."""
        return None

    def before_start(self, state, mode):
        """restart.py, before it starts a gateway on the state directory (mode: the restart step's
        CLAWPAIR_RESTART_MODE, '' for a plain restart)."""


def register(name, req, desc, cls, **attrs):
    cls = type(cls.__name__, (cls,), dict(attrs, name=name, req=req, desc=desc))
    REGISTRY.append(cls)
    return cls


def mutant(name, req, desc, **attrs):
    def deco(cls):
        return register(name, req, desc, cls, **attrs)
    return deco


def get(name):
    for cls in REGISTRY:
        if cls.name == name:
            return cls()
    raise KeyError('no mutant named %s' % name)


# --------------------------------------------------------------------------- helpers

CLIENT_IDS = ('webchat-ui', 'openclaw-control-ui', 'webchat', 'cli', 'gateway-client',
              'openclaw-macos', 'openclaw-ios', 'openclaw-android', 'node-host', 'test',
              'fingerprint', 'openclaw-probe', 'openclaw-browser-copilot', 'openclaw-tui',
              'openclaw-linux', 'openclaw-watchos', 'openclaw-worker')
KEYS = {'minProtocol': None, 'maxProtocol': None,
        'client': {'id', 'displayName', 'version', 'platform', 'deviceFamily', 'modelIdentifier',
                   'mode', 'instanceId', 'buildId', 'timeZone'},
        'caps': None, 'commands': None, 'permissions': None, 'pathEnv': None, 'role': None,
        'scopes': None, 'device': {'id', 'publicKey', 'signature', 'signedAt', 'nonce'},
        'auth': {'token', 'password', 'deviceToken', 'bootstrapToken', 'approvalRuntimeToken',
                 'agentRuntimeIdentityToken'},
        'locale': None, 'userAgent': None, 'computerUse': None, 'workerRuns': None,
        'modelCatalog': None}
OPAQUE = ('computerUse', 'workerRuns', 'modelCatalog')
JS_SPACE = '\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008' \
           '\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'


def norm_meta(s):
    """§4.2: JavaScript trim, then ASCII A-Z to lower case."""
    s = (s or '').strip(JS_SPACE)
    return ''.join(chr(ord(ch) + 32) if 'A' <= ch <= 'Z' else ch for ch in s)


def sig_payload(c, version):
    """The §4.4 payload of c's connect, in version 'v1', 'v2' or 'v3'."""
    p, d = c.connect or {}, c.device or {}
    cl = p.get('client') if isinstance(p.get('client'), dict) else {}
    a = p.get('auth') if isinstance(p.get('auth'), dict) else {}
    tok = ''
    for k in ('token', 'deviceToken', 'bootstrapToken'):
        if k in a:
            tok = str(a[k])
            break
    scopes = p.get('scopes') if isinstance(p.get('scopes'), list) else []
    f = [version, str(d.get('id', '')), str(cl.get('id', '')), str(cl.get('mode', '')), c.role,
         ','.join(str(s) for s in scopes), str(d.get('signedAt', '')), tok]
    if version != 'v1':
        f.append(str(d.get('nonce', '')))
    if version == 'v3':
        f += [norm_meta(cl.get('platform')), norm_meta(cl.get('deviceFamily'))]
    return '|'.join(f).encode('utf-8')


def signs(c, version):
    """c's device signature verifies over its `version` payload."""
    d = c.device or {}
    pk, sig = ed25519.b64(d.get('publicKey')), ed25519.b64(d.get('signature'))
    return bool(pk and sig) and ed25519.verify(pk, sig_payload(c, version), sig)


def refuse(c, dcode, wire, message, close_code, reason=None):
    """Answers c's connect with an error and closes it, on the gateway's behalf."""
    c.refused = dcode
    c.to_client(c.error(c.connect_id, wire, dcode, message))
    c.close_client(close_code, reason if reason is not None else message)
    return []


def known_tokens(proxy):
    return dict((v, k) for k, v in proxy.tokens.items())


def shared_or_known(c):
    t = c.token
    return t == c.proxy.token or t in known_tokens(c.proxy)


def pairing_ops(proxy):
    return [o for o in proxy.live() if o.authed and not o.device and o.role == 'operator'
            and o.has_scope('operator.pairing', 'operator.admin')]


def accepting(name, req, code, desc, when=None, **attrs):
    """The gateway's refusal `code` of a connect becomes an acceptance (held open or hello-ok)."""
    class Accepting(Mutant):
        def gateway_msg(self, c, m):
            if c.refused_with(m, code) and (when is None or when(c)):
                return c.accept_instead()
    return register(name, req, desc, Accepting, **attrs)


def closing(name, req, desc, fn, **attrs):
    """fn(code, reason) -> (code, reason) or None for the gateway's closes."""
    class Closing(Mutant):
        def gateway_close(self, c, code, reason):
            return fn(code, reason)
    return register(name, req, desc, Closing, **attrs)


def dropping(name, req, desc, pred, **attrs):
    """The gateway's messages for which pred(c, m) holds never reach the client."""
    class Dropping(Mutant):
        def gateway_msg(self, c, m):
            if pred(c, m):
                return []
    return register(name, req, desc, Dropping, **attrs)


def rewriting(name, req, desc, pred, fn, **attrs):
    """fn(c, obj) changes (in place) the gateway's messages for which pred(c, m) holds."""
    class Rewriting(Mutant):
        def gateway_msg(self, c, m):
            if pred(c, m):
                o = m.obj
                fn(c, o)
                m.set(o)
    return register(name, req, desc, Rewriting, **attrs)


def answering(name, req, desc, method, fn, **attrs):
    """The proxy answers the client's `method` requests with fn(c, id, params) (a res object, or
    None to relay the request) and does not forward them."""
    class Answering(Mutant):
        def client_msg(self, c, m):
            if m.is_req(method) and c.authed:
                r = fn(c, m.obj.get('id'), m.obj.get('params') or {})
                if r is not None:
                    c.to_client(r)
                    return []
    return register(name, req, desc, Answering, **attrs)


def header_rewriting(name, req, desc, fn, **attrs):
    """fn(lines) -> lines for the upgrade request's headers."""
    class Headers(Mutant):
        def headers(self, c, lines):
            return fn(lines)
    return register(name, req, desc, Headers, **attrs)


def hname(line):
    return line.split(':', 1)[0].strip().lower()


def hvalue(line):
    return line.split(':', 1)[1].strip() if ':' in line else ''


def without(*names):
    return lambda lines: [h for h in lines if hname(h) not in names]


def is_event(*names):
    return lambda c, m: m.is_event() and m.obj.get('event') in names


# =========================================================================== frames and challenge

@mutant('binary-frame-ignored', 'WIRE-1', 'a binary message is dropped instead of closing the connection 1008')
class BinaryIgnored(Mutant):
    def client_msg(self, c, m):
        if m.op == 2:
            return []


closing('invalid-frame-closes-1000', 'WIRE-1', 'an invalid frame closes 1000 instead of 1008 (2026.1.30 before the handshake)',
        lambda code, reason: (1000, reason) if (code, reason) == (1008, 'invalid request frame') else None)
rewriting('challenge-nonce-uppercase', 'WIRE-2', 'the challenge nonce is upper-case hex',
          lambda c, m: m.is_event('connect.challenge'),
          lambda c, o: o['payload'].__setitem__('nonce', str(o['payload'].get('nonce', '')).upper()))
dropping('no-ticks', 'WIRE-16', 'no tick events are sent', lambda c, m: m.is_event('tick'), config=('ticks',))


@mutant('bad-frame-closes-everyone', 'ROBUST-1', "one client's invalid frame closes every other connection too")
class BadFrameClosesAll(Mutant):
    def gateway_close(self, c, code, reason):
        if code in (1008, 1009) and reason in ('invalid request frame', 'payload too large'):
            for o in self.proxy.live():
                if o is not c:
                    o.close_client(1011, 'internal error')


# =========================================================================== identity, signatures

accepting('public-key-not-parsed', 'WIRE-7', 'DEVICE_AUTH_PUBLIC_KEY_INVALID',
          'a device.publicKey that does not parse as a key is accepted')
accepting('device-id-not-checked', 'WIRE-7', 'DEVICE_AUTH_DEVICE_ID_MISMATCH',
          "a device.id that is not the SHA-256 of the key is accepted")
accepting('signature-not-checked', 'WIRE-8', 'DEVICE_AUTH_SIGNATURE_INVALID',
          'a signature that verifies over no payload is accepted')
accepting('v1-signature-accepted', 'WIRE-8', 'DEVICE_AUTH_SIGNATURE_INVALID',
          'a signature over the v1 payload (no nonce) is accepted',
          when=lambda c: signs(c, 'v1'))


@mutant('v3-signature-refused', 'WIRE-8', 'a signature over the v3 payload is refused (v2 only, as 2026.1.30)')
class V3Refused(Mutant):
    def client_msg(self, c, m):
        if m.is_req('connect') and m.obj.get('id') == c.connect_id and c.device \
                and signs(c, 'v3') and not signs(c, 'v2'):
            return refuse(c, 'DEVICE_AUTH_SIGNATURE_INVALID', 'INVALID_REQUEST',
                          'device signature invalid', 1008)


@mutant('bootstrap-token-not-signed', 'WIRE-8',
        'the signature is checked with an empty <token> when only auth.bootstrapToken is sent')
class BootstrapUnsigned(Mutant):
    def client_msg(self, c, m):
        a = (c.connect or {}).get('auth') or {}
        if m.is_req('connect') and m.obj.get('id') == c.connect_id and c.device \
                and 'bootstrapToken' in a and 'token' not in a and 'deviceToken' not in a:
            return refuse(c, 'DEVICE_AUTH_SIGNATURE_INVALID', 'INVALID_REQUEST',
                          'device signature invalid', 1008)


accepting('nonce-optional', 'WIRE-9', 'DEVICE_AUTH_NONCE_REQUIRED',
          'a device connect without device.nonce is accepted')
accepting('nonce-not-compared', 'WIRE-9', 'DEVICE_AUTH_NONCE_MISMATCH',
          "a device.nonce other than the connection's challenge nonce is accepted")
accepting('ten-minute-skew', 'WIRE-10', 'DEVICE_AUTH_SIGNATURE_EXPIRED',
          'signedAt up to 600000 ms from the clock is accepted (2026.1.30)',
          when=lambda c: abs(now_ms() - int((c.device or {}).get('signedAt') or 0)) <= 600000)


@mutant('thirty-second-skew', 'WIRE-10', 'signedAt more than 30000 ms from the clock is refused')
class ThirtySeconds(Mutant):
    def client_msg(self, c, m):
        if m.is_req('connect') and m.obj.get('id') == c.connect_id and c.device:
            sa = c.device.get('signedAt')
            if isinstance(sa, int) and abs(now_ms() - sa) > 30000:
                return refuse(c, 'DEVICE_AUTH_SIGNATURE_EXPIRED', 'INVALID_REQUEST',
                              'device signature expired', 1008)


# =========================================================================== authentication

@mutant('password-authenticates', 'WIRE-11', 'auth.password is compared like auth.token')
class Password(Mutant):
    def client_msg(self, c, m):
        a = (c.connect or {}).get('auth')
        if m.is_req('connect') and m.obj.get('id') == c.connect_id and not c.device \
                and isinstance(a, dict) and 'password' in a and 'token' not in a \
                and 'deviceToken' not in a:
            o = m.obj
            o['params']['auth']['token'] = a['password']
            m.set(o)


def token_of_other(c, same_device):
    """c's token is a device token the gateway issued, to c's device for another role
    (same_device) or to another device."""
    who = known_tokens(c.proxy).get(c.token)
    if not who or not c.device_id:
        return False
    if same_device:
        return who[0] == c.device_id and who[1] != c.role
    return who[0] != c.device_id


accepting('device-token-any-role', 'WIRE-11', 'AUTH_TOKEN_MISMATCH',
          "a device token authenticates its device for another role",
          when=lambda c: token_of_other(c, True))
accepting('device-token-any-device', 'WIRE-11', 'AUTH_TOKEN_MISMATCH',
          'a device token authenticates another device',
          when=lambda c: token_of_other(c, False))
accepting('wrong-token-admitted', 'WIRE-11', 'AUTH_TOKEN_MISMATCH',
          'a token that matches nothing authenticates',
          when=lambda c: c.token not in known_tokens(c.proxy))


@mutant('missing-token-is-mismatch', 'WIRE-11', 'a connect without any token gets AUTH_TOKEN_MISMATCH')
class MissingIsMismatch(Mutant):
    def gateway_msg(self, c, m):
        if c.refused_with(m, 'AUTH_TOKEN_MISSING'):
            o = m.obj
            o['error'] = c.error(c.connect_id, 'INVALID_REQUEST', 'AUTH_TOKEN_MISMATCH',
                                 'unauthorized: gateway token mismatch')['error']
            m.set(o)

    def gateway_close(self, c, code, reason):
        if c.refused == 'AUTH_TOKEN_MISSING':
            return code, 'unauthorized: gateway token mismatch'


@mutant('device-token-refused', 'WIRE-11', 'a live device token of the device and role does not authenticate')
class DeviceTokenRefused(Mutant):
    def client_msg(self, c, m):
        if m.is_req('connect') and m.obj.get('id') == c.connect_id \
                and known_tokens(c.proxy).get(c.token) == (c.device_id, c.role):
            return refuse(c, 'AUTH_TOKEN_MISMATCH', 'INVALID_REQUEST',
                          'unauthorized: gateway token mismatch', 1008)


answering('revoke-does-nothing', 'WIRE-11', 'device.token.revoke answers ok and changes nothing',
          'device.token.revoke',
          lambda c, rid, p: c.ok(rid, {'deviceId': p.get('deviceId'), 'role': p.get('role'),
                                       'revokedAtMs': now_ms()}))


@mutant('revoke-unknown-device-ok', 'WIRE-11', 'device.token.revoke of an unknown deviceId answers ok')
class RevokeUnknownOk(Mutant):
    def gateway_msg(self, c, m):
        if c.answers(m, 'device.token.revoke') and m.err_code() == 'UNKNOWN_DEVICE_ID':
            p = c.reqs[m.obj['id']][1] or {}
            return [Msg.of(c.ok(m.obj['id'], {'deviceId': p.get('deviceId'), 'role': p.get('role'),
                                               'revokedAtMs': now_ms()}))]


@mutant('rotated-token-still-works', 'WIRE-11', 'the token that device.token.rotate replaced still authenticates')
class RotatedStillWorks(Mutant):
    def client_msg(self, c, m):
        if m.is_req('device.token.rotate'):
            p = m.obj.get('params') or {}
            old = self.proxy.tokens.get((p.get('deviceId'), p.get('role')))
            if old:
                self.proxy.state.setdefault('rotated', set()).add(old)

    def gateway_msg(self, c, m):
        if c.refused_with(m, 'AUTH_TOKEN_MISMATCH') and c.token in self.proxy.state.get('rotated', ()):
            return c.accept_instead()


@mutant('rotate-returns-old-token', 'WIRE-11', 'device.token.rotate answers with the token it replaced')
class RotateOld(Mutant):
    def client_msg(self, c, m):
        if m.is_req('device.token.rotate'):
            p = m.obj.get('params') or {}
            c.state.setdefault('old', {})[m.obj.get('id')] = \
                self.proxy.tokens.get((p.get('deviceId'), p.get('role')))

    def gateway_msg(self, c, m):
        if c.answers(m, 'device.token.rotate') and m.obj.get('ok'):
            old = c.state.get('old', {}).get(m.obj['id'])
            if old:
                o = m.obj
                o['payload']['token'] = old
                m.set(o)


accepting('node-without-device-admitted', 'WIRE-12', 'DEVICE_IDENTITY_REQUIRED',
          'a node connect without device is admitted')


@mutant('auth-before-node-device', 'WIRE-12',
        'a node without device and with a wrong token gets AUTH_TOKEN_MISMATCH (auth checked first)')
class AuthBeforeNodeDevice(Mutant):
    def client_msg(self, c, m):
        if m.is_req('connect') and m.obj.get('id') == c.connect_id and c.role == 'node' \
                and not c.device and c.token is not None and not shared_or_known(c):
            return refuse(c, 'AUTH_TOKEN_MISMATCH', 'INVALID_REQUEST',
                          'unauthorized: gateway token mismatch', 1008)


# =========================================================================== connect params

@mutant('first-request-not-closed', 'WIRE-3', 'a first request other than connect is answered but the socket stays open')
class FirstRequestOpen(Mutant):
    def gateway_msg(self, c, m):
        if m.err_code() == 'INVALID_HANDSHAKE':
            c.keep_client = True


def strip_unknown(params):
    for k in list(params):
        if k not in KEYS:
            del params[k]
        elif isinstance(KEYS[k], set) and isinstance(params[k], dict):
            for k2 in list(params[k]):
                if k2 not in KEYS[k]:
                    del params[k][k2]


@mutant('connect-keys-open', 'WIRE-4', 'connect params outside the closed key set are ignored, not refused')
class KeysOpen(Mutant):
    def client_msg(self, c, m):
        if m.is_req('connect') and isinstance(m.obj.get('params'), dict):
            o = m.obj
            strip_unknown(o['params'])
            m.set(o)


accepting('client-id-not-checked', 'WIRE-4', 'INVALID_CONNECT_PARAMS',
          'an unknown client.id is accepted',
          when=lambda c: ((c.connect or {}).get('client') or {}).get('id') not in CLIENT_IDS)
accepting('scopes-unbounded', 'WIRE-4', 'INVALID_CONNECT_PARAMS',
          'a connect with more than 32 scopes is accepted',
          when=lambda c: len((c.connect or {}).get('scopes') or []) > 32)


def longest_string(v, top=True):
    if isinstance(v, str):
        return len(v.encode('utf-8'))
    if isinstance(v, dict):
        return max([longest_string(x, False) for k, x in v.items() if not (top and k in OPAQUE)] + [0])
    if isinstance(v, list):
        return max([longest_string(x, False) for x in v] + [0])
    return 0


accepting('strings-unbounded', 'WIRE-4', 'INVALID_CONNECT_PARAMS',
          'a connect string longer than 1024 bytes is accepted',
          when=lambda c: longest_string(c.connect or {}) > 1024)


@mutant('auth-before-params', 'WIRE-4', 'authentication is checked before the params (§3.3 order)')
class AuthBeforeParams(Mutant):
    def client_msg(self, c, m):
        if m.is_req('connect') and m.obj.get('id') == c.connect_id and c.token is not None \
                and not shared_or_known(c):
            return refuse(c, 'AUTH_TOKEN_MISMATCH', 'INVALID_REQUEST',
                          'unauthorized: gateway token mismatch', 1008)


@mutant('close-reason-cut-mid-character', 'WIRE-4',
        'a close reason longer than 120 bytes is cut at byte 120, inside a character')
class CutMidChar(Mutant):
    def gateway_msg(self, c, m):
        if m.err_code() == 'INVALID_CONNECT_PARAMS':
            c.state['message'] = (m.obj.get('error') or {}).get('message') or ''

    def gateway_close(self, c, code, reason):
        msg = c.state.get('message')
        if msg and len(msg.encode()) > 120:
            return code, msg.encode()[:120].decode('utf-8', 'surrogateescape')


def protocol_range(c):
    p = c.connect or {}
    return p.get('minProtocol'), p.get('maxProtocol')


@mutant('role-before-protocol', 'WIRE-5', 'the role is checked before the protocol range (§3.3 order)')
class RoleBeforeProtocol(Mutant):
    def client_msg(self, c, m):
        lo, hi = protocol_range(c)
        if m.is_req('connect') and m.obj.get('id') == c.connect_id and isinstance(lo, int) \
                and isinstance(hi, int) and not (lo <= 4 <= hi or lo <= 3 <= hi) \
                and c.role not in ('operator', 'node'):
            return refuse(c, 'INVALID_ROLE', 'INVALID_REQUEST', 'invalid role', 1008)


@mutant('protocol-3-preferred', 'WIRE-5', 'protocol 3 is chosen when the range holds 3 and 4')
class Protocol3(Mutant):
    def gateway_msg(self, c, m):
        lo, _ = protocol_range(c)
        if m.is_res(c.connect_id) and c.connect_id and c.hello and isinstance(lo, int) and lo <= 3:
            o = m.obj
            o['payload']['protocol'] = 3
            m.set(o)


closing('protocol-mismatch-closes-1008', 'WIRE-5', 'a protocol mismatch closes 1008 instead of 1002',
        lambda code, reason: (1008, reason) if code == 1002 else None)
accepting('unknown-role-admitted', 'WIRE-6', 'INVALID_ROLE', 'a role other than operator or node is admitted')


@mutant('absent-role-is-node', 'WIRE-6', 'a connect without role is taken as role node')
class AbsentRoleNode(Mutant):
    def client_msg(self, c, m):
        if m.is_req('connect') and m.obj.get('id') == c.connect_id \
                and 'role' not in (c.connect or {}) and not c.device:
            return refuse(c, 'DEVICE_IDENTITY_REQUIRED', 'NOT_PAIRED', 'device identity required', 1008)


@mutant('auth-before-device-proof', 'WIRE-8', 'a wrong token is refused before the device signature is checked')
class AuthBeforeProof(Mutant):
    def client_msg(self, c, m):
        if m.is_req('connect') and m.obj.get('id') == c.connect_id and c.device \
                and c.token is not None and not shared_or_known(c):
            return refuse(c, 'AUTH_TOKEN_MISMATCH', 'INVALID_REQUEST',
                          'unauthorized: gateway token mismatch', 1008)


# =========================================================================== hello-ok and tokens

def hello_to(c, m):
    return c.connect_id is not None and m.is_res(c.connect_id) and m.obj.get('ok') is True \
        and isinstance(m.obj.get('payload'), dict) and m.obj['payload'].get('type') == 'hello-ok'


rewriting('hello-methods-incomplete', 'WIRE-13', 'hello-ok features.methods lacks device.token.revoke and node.event',
          hello_to, lambda c, o: o['payload']['features'].__setitem__(
              'methods', [x for x in o['payload']['features']['methods']
                          if x not in ('device.token.revoke', 'node.event')]))
rewriting('hello-auth-without-device', 'WIRE-13', 'hello-ok carries auth for a connect without device',
          lambda c, m: hello_to(c, m) and not c.device,
          lambda c, o: o['payload'].__setitem__('auth', {'deviceToken': os.urandom(16).hex(),
                                                         'role': c.role, 'scopes': c.scopes,
                                                         'issuedAtMs': now_ms()}))
rewriting('hello-policy-missing', 'WIRE-13', 'hello-ok has no policy',
          hello_to, lambda c, o: o['payload'].pop('policy', None))
rewriting('hello-auth-missing', 'WIRE-13', 'hello-ok of a paired device has no auth',
          lambda c, m: hello_to(c, m) and c.device and c.rid is None,
          lambda c, o: o['payload'].pop('auth', None))


@mutant('new-token-every-hello', 'WIRE-13', 'every hello-ok of a paired device carries a new device token')
class NewTokenEveryHello(Mutant):
    def gateway_msg(self, c, m):
        if hello_to(c, m) and c.device_id:
            auth = m.obj['payload'].get('auth') or {}
            seen = self.proxy.state.setdefault('seen', set())
            key = (c.device_id, auth.get('role'))
            if auth.get('deviceToken') and key in seen:
                o = m.obj
                o['payload']['auth']['deviceToken'] = os.urandom(16).hex()
                m.set(o)
            seen.add(key)


def add_tokens(c, o):
    toks = c.proxy.tokens
    p = o.get('payload') or {}
    devs = list(p.get('paired') or []) + [p[k] for k in ('device', 'node') if isinstance(p.get(k), dict)]
    for d in devs:
        for t in d.get('tokens') or []:
            tok = toks.get((d.get('deviceId'), t.get('role')))
            if tok:
                t['token'] = tok


rewriting('tokens-in-method-results', 'WIRE-13', 'device.pair.list and approve results show the device tokens',
          lambda c, m: any(c.answers(m, x) for x in ('device.pair.list', 'node.pair.list',
                                                      'device.pair.approve', 'node.pair.approve'))
          and m.obj.get('ok'), add_tokens)


# =========================================================================== hold-open

@mutant('pending-closed-1008', 'HOLD-1', 'a connect that needs approval is refused PAIRING_REQUIRED and closed 1008 (OpenClaw #6836)')
class Closed1008(Mutant):
    def gateway_msg(self, c, m):
        if m.is_event('connect.pending'):
            return refuse(c, 'PAIRING_REQUIRED', 'NOT_PAIRED', 'pairing required', 1008)


dropping('pending-event-dropped', 'HOLD-1', 'a held connect gets no connect.pending event',
         lambda c, m: m.is_event('connect.pending'))


@mutant('held-socket-times-out', 'HOLD-2', 'a held-open socket is closed 4008 after 1000 ms (handshake timeout applied)')
class HeldTimesOut(Mutant):
    def gateway_msg(self, c, m):
        if m.is_event('connect.pending') and not c.state.get('timer'):
            def fire():
                if c.held and not c.authed:
                    c.close_client(4008, 'handshake timeout')
            c.state['timer'] = asyncio.get_event_loop().call_later(1.0, fire)


dropping('held-socket-no-ticks', 'HOLD-2', 'a held-open socket gets no ticks',
         lambda c, m: m.is_event('tick') and c.held and not c.authed, config=('ticks',))


@mutant('held-request-closes', 'HOLD-2', 'a request on a held-open socket is answered, then the socket is closed')
class HeldRequestCloses(Mutant):
    def gateway_msg(self, c, m):
        if c.held and not c.authed and m.err_code() in ('UNAUTHORIZED_ROLE', 'CONNECT_ALREADY_DONE'):
            c.to_client(m)
            c.close_client(1008, 'unauthorized: pairing pending')
            return []


@mutant('approval-closes-held', 'HOLD-3', 'an approved held connect is closed instead of answered (the node must reconnect)')
class ApprovalCloses(Mutant):
    def gateway_msg(self, c, m):
        if hello_to(c, m) and c.rid:
            c.close_client(1000, 'approved: reconnect')
            return []


rewriting('approval-hello-without-token', 'HOLD-3', 'the hello-ok that answers an approved held connect has no auth.deviceToken',
          lambda c, m: hello_to(c, m) and c.rid is not None,
          lambda c, o: (o['payload'].get('auth') or {}).pop('deviceToken', None))
closing('reject-closes-1008', 'HOLD-4', 'a rejected held connect is closed 1008 instead of 4403',
        lambda code, reason: (1008, 'pairing required') if code == 4403 else None)


def expired_event(c, m):
    return m.is_event() and m.obj.get('event') in ('device.pair.resolved', 'node.pair.resolved') \
        and (m.obj.get('payload') or {}).get('decision') == 'expired'


dropping('expiry-unannounced', 'HOLD-5', 'an expired request is removed without device.pair.resolved "expired"',
         expired_event)


@mutant('supersede-keeps-old', 'HOLD-6', 'a newer connect of the device leaves the older held socket open and unanswered')
class SupersedeKeepsOld(Mutant):
    def gateway_msg(self, c, m):
        if c.refused_with(m, 'PAIRING_SUPERSEDED'):
            c.keep_client = True
            return []


closing('shutdown-closes-1000', 'HOLD-7', 'shutdown closes held sockets 1000 with no reason',
        lambda code, reason: (1000, '') if code == 1001 else None)


# =========================================================================== one store

def is_res_ok(*methods):
    return lambda c, m: any(c.answers(m, x) for x in methods) and m.obj.get('ok')


rewriting('device-list-hides-nodes', 'STORE-1', 'device.pair.list leaves out node-role requests',
          is_res_ok('device.pair.list'),
          lambda c, o: o['payload'].__setitem__('pending', [r for r in o['payload'].get('pending', [])
                                                            if r.get('role') != 'node']))
rewriting('device-list-oldest-first', 'STORE-1', 'device.pair.list lists pending requests oldest first',
          is_res_ok('device.pair.list'),
          lambda c, o: o['payload'].__setitem__('pending', list(reversed(o['payload'].get('pending', [])))))
rewriting('node-list-empty', 'STORE-2', 'node.pair.list shows no pending request (OpenClaw #6836: two stores)',
          is_res_ok('node.pair.list'), lambda c, o: o['payload'].__setitem__('pending', []))

for _method in ('node.pair.approve', 'node.pair.reject'):
    answering('%s-unknown' % _method.replace('node.pair.', 'node-'), 'STORE-3',
              '%s answers UNKNOWN_REQUEST_ID for every request (OpenClaw #6836)' % _method, _method,
              lambda c, rid, p: c.error(rid, 'INVALID_REQUEST', 'UNKNOWN_REQUEST_ID', 'unknown requestId',
                                        requestId=p.get('requestId'), pendingRequestIds=[]))


@mutant('node-approve-any-role', 'STORE-3', 'node.pair.approve resolves a request of role operator')
class NodeApproveAnyRole(Mutant):
    async def gateway_msg(self, c, m):
        if c.answers(m, 'node.pair.approve') and m.err_code() in ('INVALID_PARAMS', 'UNKNOWN_REQUEST_ID'):
            p = c.reqs[m.obj['id']][1] or {}
            op = await self.proxy.op()
            r = await op.call('device.pair.approve', p)
            if r.get('ok'):
                dev = dict(r['payload'].get('device') or {})
                dev['nodeId'] = dev.get('deviceId')
                return [Msg.of(c.ok(m.obj['id'], {'requestId': p.get('requestId'), 'node': dev}))]


rewriting('unknown-without-pending-ids', 'STORE-4', 'UNKNOWN_REQUEST_ID carries no details.pendingRequestIds',
          lambda c, m: m.err_code() == 'UNKNOWN_REQUEST_ID',
          lambda c, o: o['error']['details'].pop('pendingRequestIds', None))


# =========================================================================== reconnect

@mutant('new-request-id-on-reconnect', 'RECON-1', 'a reconnect while pending gets a new requestId')
class NewRequestId(Mutant):
    def gateway_msg(self, c, m):
        if m.is_event('connect.pending') and c.device_id:
            seen = self.proxy.state.setdefault('pending', {})
            o = m.obj
            if c.device_id in seen:
                o['payload']['requestId'] = str(uuid.uuid4())
                m.set(o)
            seen[c.device_id] = o['payload']['requestId']


@mutant('expiry-not-refreshed', 'RECON-1', 'a reconnect while pending does not move expiresAtMs: the request expires TTL after it was made')
class ExpiryNotRefreshed(Mutant):
    def gateway_msg(self, c, m):
        st = self.proxy.state
        first = st.setdefault('first', {})
        expired = st.setdefault('expired', set())
        o = m.obj
        if m.is_event('connect.pending'):
            p = o['payload']
            rid = p.get('requestId')
            if rid in first:
                p['expiresAtMs'] = first[rid]
                m.set(o)
                if rid not in st.setdefault('timers', set()):
                    st['timers'].add(rid)
                    delay = max(0.0, (first[rid] - now_ms()) / 1000.0)
                    asyncio.get_event_loop().call_later(
                        delay, lambda: asyncio.ensure_future(self.expire(rid)))
            else:
                first[rid] = p.get('expiresAtMs')
        elif m.is_event() and o.get('event') in ('device.pair.resolved', 'node.pair.resolved') \
                and (o.get('payload') or {}).get('requestId') in expired \
                and o['payload'].get('decision') == 'rejected':
            o['payload']['decision'] = 'expired'
            m.set(o)
        elif c.refused_with(m, 'PAIRING_REJECTED') and c.rid in expired:
            o['error'] = c.error(c.connect_id, 'NOT_PAIRED', 'PAIRING_EXPIRED',
                                 'pairing request expired before approval')['error']
            m.set(o)

    def gateway_close(self, c, code, reason):
        if code == 4403 and c.rid in self.proxy.state.get('expired', ()):
            return 4408, 'pairing expired'

    async def expire(self, rid):
        self.proxy.state['expired'].add(rid)
        op = await self.proxy.op()
        await op.call('device.pair.reject', {'requestId': rid})


@mutant('refresh-announced-again', 'RECON-1', 'a reconnect while pending sends device.pair.requested again')
class RefreshAnnounced(Mutant):
    def gateway_msg(self, c, m):
        st = self.proxy.state
        if m.is_event('device.pair.requested') or m.is_event('node.pair.requested'):
            p = m.obj.get('payload') or {}
            st.setdefault('req', {}).setdefault(p.get('requestId'), {})[m.obj['event']] = p
        elif m.is_event('connect.pending'):
            rid = (m.obj.get('payload') or {}).get('requestId')
            if rid in st.setdefault('announced', set()):
                for name, p in sorted(st.get('req', {}).get(rid, {}).items()):
                    for o in pairing_ops(self.proxy):
                        o.event(name, p)
            st['announced'].add(rid)


# =========================================================================== events

@mutant('requested-to-every-operator', 'EVT-1', 'device.pair.requested also reaches operators without operator.pairing')
class RequestedToEvery(Mutant):
    def gateway_msg(self, c, m):
        if m.is_event('device.pair.requested'):
            p = m.obj.get('payload') or {}
            sent = self.proxy.state.setdefault('sent', set())
            for o in self.proxy.live():
                if o.authed and o.role == 'operator' and not o.has_scope('operator.pairing', 'operator.admin') \
                        and (o.n, p.get('requestId')) not in sent:
                    sent.add((o.n, p.get('requestId')))
                    o.event('device.pair.requested', p)


dropping('resolved-not-sent', 'EVT-1', 'no device.pair.resolved is sent', is_event('device.pair.resolved'))
dropping('node-events-missing', 'EVT-2', 'node-role requests get no node.pair.requested/resolved',
         is_event('node.pair.requested', 'node.pair.resolved'))


@mutant('global-seq', 'EVT-3', 'one seq counter for the whole gateway (2026.1.30)')
class GlobalSeq(Mutant):
    def gateway_msg(self, c, m):
        if m.is_event() and isinstance(m.obj.get('seq'), int):
            self.proxy.state['seq'] = self.proxy.state.get('seq', 0) + 1
            m.seq_override = self.proxy.state['seq'] + 2


rewriting('challenge-has-seq', 'EVT-3', 'connect.challenge carries a seq',
          lambda c, m: m.is_event('connect.challenge'), lambda c, o: o.__setitem__('seq', 0))


@mutant('pairing-without-scope', 'SCOPE-1', 'pairing methods are answered without operator.pairing or operator.admin')
class PairingWithoutScope(Mutant):
    async def gateway_msg(self, c, m):
        if m.err_code() == 'MISSING_SCOPE':
            method, params = c.reqs.get(m.obj['id'], (None, None))
            if method and method != 'node.list':
                op = await self.proxy.op()
                r = await op.call(method, params or {})
                r['id'] = m.obj['id']
                return [Msg.of(r)]


@mutant('node-list-needs-pairing', 'SCOPE-1', 'node.list needs operator.pairing, operator.read is not enough')
class NodeListNeedsPairing(Mutant):
    def client_msg(self, c, m):
        if m.is_req('node.list') and c.authed and not c.has_scope('operator.pairing', 'operator.admin'):
            c.to_client(c.error(m.obj.get('id'), 'INVALID_REQUEST', 'MISSING_SCOPE',
                                'missing scope: operator.pairing'))
            return []


rewriting('node-list-connected-only', 'SCOPE-1', 'node.list leaves out paired nodes that are not connected',
          is_res_ok('node.list'),
          lambda c, o: o['payload'].__setitem__('nodes', [n for n in o['payload'].get('nodes', [])
                                                          if n.get('connected')]))


# =========================================================================== limits

@mutant('pending-never-expires', 'LIMIT-1', 'a pending request outlives its TTL: the held socket is never told')
class NeverExpires(Mutant):
    def gateway_msg(self, c, m):
        if c.refused_with(m, 'PAIRING_EXPIRED'):
            c.keep_client = True
            return []


accepting('pending-per-ip-uncapped', 'LIMIT-2', 'PENDING_LIMIT_IP',
          'held-open connects from one address are not capped')
accepting('pending-total-uncapped', 'LIMIT-3', 'PENDING_LIMIT_TOTAL',
          'held-open connects in total are not capped', config=('max-pending-2',))
closing('handshake-timeout-closes-1000', 'LIMIT-4', 'the handshake timeout closes 1000 with no reason (OpenClaw)',
        lambda code, reason: (1000, '') if code == 4008 else None)


@mutant('preauth-uncapped', 'LIMIT-4', 'connections that have not finished the handshake are not capped per address')
class PreauthUncapped(Mutant):
    def gateway_close(self, c, code, reason):
        if code == 4429:
            c.keep_client = True
            c.event('connect.challenge', {'nonce': str(uuid.uuid4()), 'ts': now_ms()}, seq=False)
            return False


closing('frame-cap-silent', 'LIMIT-5', 'an oversize frame closes 1009 without a reason',
        lambda code, reason: (1009, '') if code == 1009 else None)


# =========================================================================== persistence

def records(state, table):
    return sorted(glob.glob(os.path.join(state, table, '*.json')))


def edit_records(state, table, fn):
    for path in records(state, table):
        try:
            with open(path, encoding='utf-8') as f:
                rec = json.load(f)
        except ValueError:
            continue  # a file a restart mode damaged: not this mutant's business
        fn(rec)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(rec, f)


@mutant('restart-loses-pending', 'PERSIST-1', 'pending requests are lost on a restart')
class LosesPending(Mutant):
    def before_start(self, state, mode):
        for p in records(state, 'pending'):
            os.unlink(p)


@mutant('restart-loses-tokens', 'PERSIST-2', 'device tokens are lost on a restart')
class LosesTokens(Mutant):
    def before_start(self, state, mode):
        edit_records(state, 'paired', lambda r: r.__setitem__('tokens', {}))


@mutant('restart-forgets-revocations', 'PERSIST-2', 'a revoked device token is live again after a restart')
class ForgetsRevocations(Mutant):
    def before_start(self, state, mode):
        def fn(rec):
            for t in (rec.get('tokens') or {}).values():
                t.pop('revokedAtMs', None)
        edit_records(state, 'paired', fn)


@mutant('corrupt-table-read-as-empty', 'PERSIST-2', 'a paired-device file that does not parse is read as no record (2026.1.30: as {})')
class CorruptAsEmpty(Mutant):
    def before_start(self, state, mode):
        for path in records(state, 'paired'):
            try:
                with open(path, encoding='utf-8') as f:
                    json.load(f)
            except ValueError:
                os.unlink(path)


@mutant('state-dir-not-locked', 'PERSIST-4', 'a second gateway may open a state directory in use')
class NotLocked(Mutant):
    def before_start(self, state, mode):
        if mode == 'second' and os.path.exists(os.path.join(state, 'lock')):
            os.unlink(os.path.join(state, 'lock'))  # a new lock file: the flock of the first is on the old one


@mutant('store-failure-acknowledged', 'PERSIST-3', 'an approval the store could not write is answered ok')
class StoreFailureOk(Mutant):
    def gateway_msg(self, c, m):
        if m.err_code() == 'STORE_WRITE_FAILED' and c.answers(m, 'device.pair.approve'):
            p = c.reqs[m.obj['id']][1] or {}
            return [Msg.of(c.ok(m.obj['id'], {'requestId': p.get('requestId'), 'device': {}}))]


@mutant('ok-before-write', 'PERSIST-3', 'device.pair.approve answers ok before the approval is on disk')
class OkBeforeWrite(Mutant):
    def client_msg(self, c, m):
        if m.is_req('device.pair.approve') and c.authed:
            rid = m.obj.get('id')
            p = m.obj.get('params') or {}
            c.state.setdefault('early', set()).add(rid)
            c.to_client(c.ok(rid, {'requestId': p.get('requestId'), 'device': {}}))
            asyncio.get_event_loop().call_later(3.0, c.to_gateway, m)
            return []

    def gateway_msg(self, c, m):
        if m.is_res() and m.obj.get('id') in c.state.get('early', ()):
            return []


# =========================================================================== locality

def leftmost_xff(lines):
    vals = [hvalue(h) for h in lines if hname(h) == 'x-forwarded-for']
    rest = [h for h in lines if hname(h) != 'x-forwarded-for']
    if vals:
        rest.append('X-Forwarded-For: ' + ','.join(vals).split(',')[0].strip())
    return rest


header_rewriting('forwarded-client-local', 'LOCAL-2', "a client forwarded by the trusted proxy is taken as local (X-Forwarded-For ignored)",
                 without('x-forwarded-for'))
header_rewriting('leftmost-forwarded-for', 'LOCAL-3', 'the leftmost X-Forwarded-For entry is taken as the client address',
                 leftmost_xff)
header_rewriting('x-real-ip-ignored', 'LOCAL-3', 'X-Real-IP from the trusted proxy is ignored', without('x-real-ip'))
header_rewriting('long-proxy-header-dropped', 'LOCAL-4', 'a proxy header over 2048 bytes is dropped instead of refused with 431',
                 lambda lines: [h for h in lines if not (hname(h) in ('x-forwarded-for', 'x-real-ip', 'forwarded',
                                                                      'x-forwarded-host')
                                                         and len(hvalue(h)) > 2048)])
header_rewriting('origin-ignored', 'LOCAL-5', 'a connection with an Origin header can be local', without('origin'))
header_rewriting('forwarded-ignored', 'LOCAL-5', 'a connection with a Forwarded header can be local', without('forwarded'))


@mutant('local-held-open', 'LOCAL-1', 'a local device is held open instead of approved silently')
class LocalHeld(Mutant):
    def headers(self, c, lines):
        if not any(hname(h) in ('x-forwarded-for', 'x-real-ip', 'origin', 'forwarded', 'x-forwarded-host')
                   for h in lines):
            lines = lines + ['X-Forwarded-For: 10.99.0.1']
        return lines


@mutant('silent-approval-announced', 'LOCAL-1', 'a silent local approval sends device.pair.requested')
class SilentAnnounced(Mutant):
    def gateway_msg(self, c, m):
        if hello_to(c, m) and c.device_id and not c.remote and c.rid is None:
            seen = self.proxy.state.setdefault('seen', set())
            if c.device_id not in seen:
                seen.add(c.device_id)
                did = c.device_id
                p = {'requestId': str(uuid.uuid4()), 'deviceId': did, 'role': c.role, 'silent': True,
                     'fingerprint': ':'.join(did[i:i + 4] for i in range(0, 16, 4)), 'ts': now_ms()}
                for o in pairing_ops(self.proxy):
                    o.event('device.pair.requested', p)


# =========================================================================== methods

NODE_METHODS = ('node.invoke.result', 'node.event')


@mutant('node-may-call-operator-methods', 'WIRE-15', 'a node connection may call operator methods')
class NodeCallsOperator(Mutant):
    async def gateway_msg(self, c, m):
        if c.role == 'node' and c.authed and m.err_code() == 'UNAUTHORIZED_ROLE':
            method, params = c.reqs.get(m.obj['id'], (None, None))
            op = await self.proxy.op()
            r = await op.call(method, params or {})
            r['id'] = m.obj['id']
            return [Msg.of(r)]


@mutant('node-methods-refused', 'WIRE-15', 'node.invoke.result and node.event are refused for nodes')
class NodeMethodsRefused(Mutant):
    def client_msg(self, c, m):
        if c.role == 'node' and c.authed and m.is_req() and m.obj.get('method') in NODE_METHODS:
            c.to_client(c.error(m.obj.get('id'), 'INVALID_REQUEST', 'UNAUTHORIZED_ROLE',
                                'unauthorized role: node'))
            return []


@mutant('operator-may-call-node-methods', 'WIRE-15', 'an operator may call node.invoke.result and node.event')
class OperatorNodeMethods(Mutant):
    def client_msg(self, c, m):
        if c.role == 'operator' and c.authed and m.is_req() and m.obj.get('method') in NODE_METHODS:
            c.to_client(c.ok(m.obj.get('id'), {}))
            return []


rewriting('node-method-answer-not-empty', 'WIRE-15', 'node.event and node.invoke.result are answered with a non-empty payload',
          lambda c, m: any(c.answers(m, x) for x in NODE_METHODS) and m.obj.get('ok'),
          lambda c, o: o.__setitem__('payload', {'accepted': True}))


@mutant('unknown-method-closes', 'WIRE-14', 'an unknown method is answered, then the socket is closed')
class UnknownMethodCloses(Mutant):
    def gateway_msg(self, c, m):
        if c.authed and m.err_code() == 'UNKNOWN_METHOD':
            c.to_client(m)
            c.close_client(1008, 'unknown method')
            return []


rewriting('error-details-code-dropped', 'WIRE-14', 'errors after the handshake carry no details.code (2026.1.30)',
          lambda c, m: c.authed and m.err_code() is not None,
          lambda c, o: o['error'].pop('details', None))


@mutant('second-connect-closes', 'WIRE-14', 'a second connect is answered, then the socket is closed')
class SecondConnectCloses(Mutant):
    def gateway_msg(self, c, m):
        if m.err_code() == 'CONNECT_ALREADY_DONE':
            c.to_client(m)
            c.close_client(1008, 'connect already done')
            return []


@mutant('method-params-open', 'WIRE-14', 'unknown keys in method params are ignored, not refused')
class ParamsOpen(Mutant):
    ALLOWED = {'device.pair.list': (), 'node.pair.list': (), 'node.list': (),
               'device.pair.approve': ('requestId', 'publicKey', 'fingerprint'),
               'node.pair.approve': ('requestId', 'publicKey', 'fingerprint'),
               'device.pair.reject': ('requestId',), 'node.pair.reject': ('requestId',),
               'device.pair.remove': ('deviceId',), 'device.token.revoke': ('deviceId', 'role'),
               'device.token.rotate': ('deviceId', 'role', 'scopes')}

    def client_msg(self, c, m):
        if m.is_req() and c.authed and m.obj.get('method') in self.ALLOWED \
                and isinstance(m.obj.get('params'), dict):
            o = m.obj
            keep = self.ALLOWED[o['method']]
            o['params'] = dict((k, v) for k, v in o['params'].items() if k in keep)
            m.set(o)


@mutant('remove-keeps-sessions', 'TRUST-5', "device.pair.remove leaves the device's connections open")
class RemoveKeepsSessions(Mutant):
    def gateway_close(self, c, code, reason):
        if code == 4410:
            return False


@mutant('remove-unknown-ok', 'TRUST-5', 'device.pair.remove of a deviceId that is not paired answers ok')
class RemoveUnknownOk(Mutant):
    def gateway_msg(self, c, m):
        if c.answers(m, 'device.pair.remove') and m.err_code() == 'UNKNOWN_DEVICE_ID':
            p = c.reqs[m.obj['id']][1] or {}
            return [Msg.of(c.ok(m.obj['id'], {'deviceId': p.get('deviceId')}))]


# =========================================================================== key binding

@mutant('fingerprint-not-checked', 'KEY-1', 'the fingerprint given to approve is not compared')
class FingerprintNotChecked(Mutant):
    def client_msg(self, c, m):
        if m.is_req() and m.obj.get('method') in ('device.pair.approve', 'node.pair.approve') \
                and isinstance(m.obj.get('params'), dict) and 'fingerprint' in m.obj['params']:
            o = m.obj
            del o['params']['fingerprint']
            m.set(o)


@mutant('public-key-not-checked', 'KEY-1', 'the publicKey given to approve is not compared')
class PublicKeyNotChecked(Mutant):
    def client_msg(self, c, m):
        if m.is_req() and m.obj.get('method') in ('device.pair.approve', 'node.pair.approve') \
                and isinstance(m.obj.get('params'), dict) and 'publicKey' in m.obj['params']:
            o = m.obj
            del o['params']['publicKey']
            m.set(o)


@mutant('key-mismatch-drops-request', 'KEY-1', 'an approve with a wrong key or fingerprint removes the request')
class MismatchDrops(Mutant):
    async def gateway_msg(self, c, m):
        if m.err_code() == 'PAIRING_PUBLIC_KEY_MISMATCH':
            p = c.reqs.get(m.obj['id'], (None, {}))[1] or {}
            op = await self.proxy.op()
            await op.call('device.pair.reject', {'requestId': p.get('requestId')})


def short_prefix_of(fp, did):
    h = ''.join(ch for ch in str(fp) if ch not in ':- ').lower()
    return 4 <= len(h) < 16 and did and did.startswith(h)


@mutant('short-fingerprint-accepted', 'KEY-1', 'a fingerprint of 4 hex characters that starts the deviceId is accepted')
class ShortFingerprint(Mutant):
    def gateway_msg(self, c, m):
        for name in ('connect.pending', 'device.pair.requested'):
            if m.is_event(name):
                p = m.obj.get('payload') or {}
                self.proxy.state.setdefault('dev', {})[p.get('requestId')] = p.get('deviceId')

    def client_msg(self, c, m):
        if m.is_req() and m.obj.get('method') in ('device.pair.approve', 'node.pair.approve') \
                and isinstance(m.obj.get('params'), dict):
            o = m.obj
            p = o['params']
            did = self.proxy.state.get('dev', {}).get(p.get('requestId'))
            if 'fingerprint' in p and short_prefix_of(p['fingerprint'], did):
                del p['fingerprint']
                m.set(o)
