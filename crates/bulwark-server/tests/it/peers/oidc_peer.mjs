// OpenID Connect peer for Bulwark's SSO integration tests.
//
// usage: node oidc_peer.mjs CONFIG.json
// Modules come from $BULWARK_TEST_NODE_MODULES (default ~/.cache/bulwark-test-npm/node_modules), installed by
//   npm install --prefix ~/.cache/bulwark-test-npm --no-audit --no-fund --save-exact oidc-provider@9.13.3 jose@6.2.19
// Listens on 127.0.0.1 only, prints exactly one line `ready <issuer>` on stdout once listening (everything
// else goes to stderr), and exits when stdin closes or on SIGTERM/SIGINT. See oidc_peer.md for the HTTP steps.
//
// mode "op": the real oidc-provider (panva), as a genuine OP.
//   {"mode":"op", "port":0|N, "issuer"?: "http://127.0.0.1:N", "signing_alg"?: "RS256"|"PS256"|"ES256"|"EdDSA",
//    "rotate_key_path"?: "/_test/rotate", "implicit_consent"?: true (false: a logged-in user meeting a new client or
//    new scopes gets a consent interaction instead of silent SSO),
//    "clients": [{client_id, client_secret?, token_endpoint_auth_method, jwks?, redirect_uris,
//                 post_logout_redirect_uris?, backchannel_logout_uri?, backchannel_logout_session_required?,
//                 id_token_signed_response_alg?, ...any other client metadata}],
//    "accounts": [{sub, email, email_verified, name, groups: [], amr: [], acr?}]}
//   Code flow only, PKCE (S256) required. Headless interaction: GET /interaction/:uid (HTML form),
//   POST /interaction/:uid/login (login=<sub>: logs in AND grants everything requested), POST /interaction/:uid/abort.
//   Control: POST <rotate_key_path> {"alg"?, "keep_old"?} new signing key(s); POST /_test/logout {"sub"} ends that
//   account's OP sessions and sends oidc-provider's back-channel logout tokens.
//
// mode "forge": a hostile hand-written OP for attack corpora (no oidc-provider).
//   {"mode":"forge", "port":0|N, "issuer"?, "client_id", "redirect_uri"}
//   Discovery, /jwks, /authorize (immediate 302 with code), /token (checks PKCE and single use only), /end_session.
//   POST /_scenario {claims, header, sign, state, iss_param, at_hash, id_token_raw, jwks, token_response} shapes the
//   next responses (null deletes a claim/header/field); POST /_scenario/reset; POST /_logout_token {claims, header,
//   sign} returns {"logout_token"}; GET /_last_token_request shows how the RP called /token.
//   sign: "a" (RS256 key in JWKS, kid a) | "b" (RSA key NOT in JWKS, also kid a) | "a_es256" (EC key in JWKS, kid e)
//         | "none" (alg none, empty signature) | "hs256_pubkey" (HMAC keyed with key A's SPKI PEM)
//         | "hs256_jwk" (HMAC keyed with key A's public JWK as JSON text).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// oidc-provider prints notices with console.info: keep stdout for the single `ready` line.
console.log = console.info = console.debug = (...a) => console.error(...a);
const log = (...a) => process.stderr.write(`[oidc-peer ${new Date().toISOString()}] ${a.join(' ')}\n`);

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const NM = process.env.BULWARK_TEST_NODE_MODULES || path.join(os.homedir(), '.cache/bulwark-test-npm/node_modules');
const requireFrom = createRequire(path.join(NM, 'oidc-provider', 'package.json'));
const load = (spec) => import(pathToFileURL(spec.startsWith('/') ? spec : requireFrom.resolve(spec)).href);

process.stdin.on('end', () => process.exit(0)).on('close', () => process.exit(0)).resume();
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
process.on('unhandledRejection', (e) => log('unhandled rejection:', e?.stack || e));

const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const rand = (n = 16) => crypto.randomBytes(n).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const readBody = (req) => new Promise((ok, bad) => {
  const chunks = [];
  req.on('data', (d) => chunks.push(d)).on('end', () => ok(Buffer.concat(chunks).toString('utf8'))).on('error', bad);
});
const readJson = async (req) => { const t = await readBody(req); return t ? JSON.parse(t) : {}; };
function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const type = typeof body === 'string' ? 'text/html; charset=utf-8' : 'application/json';
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(text);
}
// Shallow merge where a null value deletes the key.
function overlay(base, over = {}) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over || {})) { if (v === null) delete out[k]; else out[k] = v; }
  return out;
}
// Listen, then learn the issuer (port 0 picks a free port), then let `setup` build the request handler.
function serve(setup) {
  let handler = (req, res) => send(res, 503, { error: 'starting' });
  const server = http.createServer((req, res) => {
    log(req.method, req.url.split('?')[0]);
    Promise.resolve(handler(req, res)).catch((e) => {
      log('handler error:', e?.stack || e);
      if (!res.headersSent) send(res, 500, { error: 'server_error', error_description: String(e?.message || e) });
    });
  });
  server.listen(cfg.port || 0, '127.0.0.1', async () => {
    const issuer = (cfg.issuer || `http://127.0.0.1:${server.address().port}`).replace(/\/$/, '');
    try { handler = await setup(issuer); } catch (e) {
      log(`startup failed (are the npm modules installed under ${NM}?):`, e?.stack || e);
      process.exit(1);
    }
    process.stdout.write(`ready ${issuer}\n`);
  });
}

// ---------------------------------------------------------------- mode "op"
async function op(issuer) {
  const { default: Provider } = await load('oidc-provider');
  const { default: MemoryAdapter } = await load(path.join(NM, 'oidc-provider/lib/adapters/memory_adapter.js'));
  const jose = await load('jose');
  const accounts = new Map((cfg.accounts || []).map((a) => [a.sub, a]));
  const signingAlg = cfg.signing_alg || 'RS256';
  const ALGS = [...new Set([signingAlg, 'RS256', 'PS256', 'ES256', 'EdDSA'])]; // first = default signer
  const rotatePath = cfg.rotate_key_path || '/_test/rotate';
  const cookieKeys = [rand(32)];

  // The default in-memory store (shared by every Provider in this process), also tracking Session ids for /_test/logout.
  const sessionIds = new Set();
  class Adapter extends MemoryAdapter {
    async upsert(id, payload, expiresIn) {
      if (this.model === 'Session') sessionIds.add(id);
      return super.upsert(id, payload, expiresIn);
    }
    async destroy(id) { if (this.model === 'Session') sessionIds.delete(id); return super.destroy(id); }
  }

  // Consent: (re)use the grant if it is this account's, and grant every requested scope and claim.
  async function grantAll(provider, grantId, accountId, params, details = {}) {
    let grant = grantId ? await provider.Grant.find(grantId) : undefined;
    if (!grant || grant.accountId !== accountId) grant = new provider.Grant({ accountId, clientId: params.client_id });
    grant.addOIDCScope(params.scope);
    const claims = [...(details.missingOIDCClaims || [])];
    const requested = typeof params.claims === 'string' ? JSON.parse(params.claims) : params.claims;
    for (const part of Object.values(requested || {})) claims.push(...Object.keys(part || {}));
    if (claims.length) grant.addOIDCClaims(claims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes || {})) grant.addResourceScope(indicator, scopes.join(' '));
    await grant.save();
    return grant.jti;
  }

  async function newKey(alg) {
    const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    return { ...await jose.exportJWK(privateKey), alg, use: 'sig', kid: `${alg.toLowerCase()}-${rand(6)}` };
  }
  let keys = await Promise.all(ALGS.map(newKey));

  function makeProvider() {
    const provider = new Provider(issuer, {
      adapter: Adapter,
      clients: (cfg.clients || []).map((c) => overlay(c)),
      clientDefaults: {
        grant_types: ['authorization_code'], response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: signingAlg,
      },
      jwks: { keys },
      cookies: { keys: cookieKeys },
      pkce: { required: () => true }, // only S256 exists in oidc-provider 9
      conformIdTokenClaims: false, // scope claims go into the ID token, not only to userinfo
      claims: {
        openid: ['sub', 'amr', 'acr', 'auth_time'], email: ['email', 'email_verified'], profile: ['name'],
        groups: ['groups'], sid: null, iss: null,
      },
      acrValues: [...new Set((cfg.accounts || []).map((a) => a.acr).filter(Boolean))],
      async findAccount(ctx, sub) {
        const a = accounts.get(sub);
        if (!a) return undefined;
        return {
          accountId: sub,
          claims: () => ({ sub, email: a.email, email_verified: a.email_verified, name: a.name, groups: a.groups }),
        };
      },
      // Implicit consent: with an OP session, a new client (or new scopes) needs no interaction (silent SSO).
      async loadExistingGrant(ctx) {
        const { oidc } = ctx;
        const id = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
        if (cfg.implicit_consent === false) return id ? oidc.provider.Grant.find(id) : undefined;
        return oidc.provider.Grant.find(await grantAll(oidc.provider, id, oidc.account.accountId, oidc.params));
      },
      interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
      features: {
        devInteractions: { enabled: false },
        claimsParameter: { enabled: true },
        backchannelLogout: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          // Same form as the default page, with logout=yes preset so a plain HTTP client can just submit it.
          async logoutSource(ctx, form) {
            ctx.body = `<!DOCTYPE html><html><body><h1>Sign out of ${esc(ctx.host)}?</h1>${
              form.replace('</form>', '<input type="hidden" name="logout" value="yes"/><button type="submit">Yes, sign me out</button></form>')
            }</body></html>`;
          },
          async postLogoutSuccessSource(ctx) { ctx.body = '<!DOCTYPE html><html><body><h1>Signed out</h1></body></html>'; },
        },
      },
      // oidc-provider's fetch refuses special-use addresses such as 127.0.0.1 (SSRF guard); the test RP lives there.
      fetch: (url, options) => { delete options.dispatcher; return globalThis.fetch(url, options); },
      ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
      async renderError(ctx, out) {
        ctx.type = 'html';
        ctx.body = `<!DOCTYPE html><html><body><h1>oops</h1><pre>${esc(JSON.stringify(out, null, 2))}</pre></body></html>`;
      },
    });
    for (const ev of ['server_error', 'authorization.error', 'grant.error', 'end_session.error', 'backchannel.error',
      'userinfo.error', 'jwks.error', 'discovery.error', 'check_session.error']) {
      provider.on(ev, (...args) => {
        const err = args.find((a) => a instanceof Error);
        log(`event ${ev}:`, err ? `${err.name}: ${err.message} ${err.error_description || ''} ${err.cause?.message || ''}` : '');
      });
    }
    provider.on('backchannel.success', (ctx, client, accountId, sid) => log(`backchannel logout sent to ${client.clientId} sub=${accountId} sid=${sid}`));
    provider.on('grant.success', (ctx) => log(`token issued to ${ctx.oidc.client.clientId}`));
    provider.on('authorization.success', (ctx) => log(`authorization success for ${ctx.oidc.client?.clientId}`));
    // Code-flow ID tokens from the token endpoint carry no at_hash in oidc-provider; add it (hashed by issue()).
    const issue = provider.IdToken.prototype.issue;
    provider.IdToken.prototype.issue = function patchedIssue(opts) {
      const at = this.ctx?.oidc?.entities?.AccessToken;
      if (opts?.use === 'idtoken' && at?.jti && !this.extra.at_hash) this.set('at_hash', at.jti);
      return issue.call(this, opts);
    };
    return { provider, callback: provider.callback() };
  }
  let current = makeProvider();
  log(`op ready: signing alg ${signingAlg}, kids ${keys.map((k) => k.kid).join(',')}, clients ${(cfg.clients || []).map((c) => c.client_id).join(',')}`);

  async function interaction(req, res, uid, action) {
    const { provider } = current;
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return send(res, 400, { error: 'interaction uid does not match the _interaction cookie' });
    const { params, prompt } = details;
    if (!action && req.method === 'GET') {
      return send(res, 200, `<!DOCTYPE html><html><body><h1>Sign in to ${esc(params.client_id)}</h1>
<p>prompt: ${esc(prompt.name)} (${esc(prompt.reasons.join(', '))}); scope: ${esc(params.scope)}</p>
<form method="post" action="/interaction/${esc(uid)}/login"><input name="login" placeholder="sub"/><button type="submit">Sign in</button></form>
<form method="post" action="/interaction/${esc(uid)}/abort"><button type="submit">Cancel</button></form>
<ul>${[...accounts.keys()].map((s) => `<li>${esc(s)}</li>`).join('')}</ul></body></html>`);
    }
    if (req.method !== 'POST') return send(res, 405, { error: 'method not allowed' });
    const form = new URLSearchParams(await readBody(req));
    if (action === 'abort') {
      log(`interaction ${uid} aborted`);
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
    }
    const sub = form.get('login');
    const account = accounts.get(sub);
    if (!account) { log(`interaction ${uid}: unknown login`); return send(res, 400, '<!DOCTYPE html><p>unknown account</p>'); }
    const grantId = await grantAll(provider, details.grantId, sub, params, prompt.details);
    log(`interaction ${uid}: login sub=${sub} client=${params.client_id} scope="${params.scope}"`);
    const login = { accountId: sub, amr: account.amr, remember: true, ...(account.acr ? { acr: account.acr } : {}) };
    return provider.interactionFinished(req, res, { login, consent: { grantId } }, { mergeWithLastSubmission: false });
  }

  // What RP-initiated logout with logout=yes does for each of the account's sessions, without a browser.
  async function logoutAccount(sub) {
    const { provider } = current;
    const results = [];
    for (const id of [...sessionIds]) {
      const session = await provider.Session.find(id);
      if (!session) { sessionIds.delete(id); continue; }
      if (session.accountId !== sub) continue;
      for (const [clientId, { grantId }] of Object.entries(session.authorizations || {})) {
        const client = await provider.Client.find(clientId);
        const sid = session.sidFor(clientId);
        if (client?.backchannelLogoutUri) {
          try { await client.backchannelLogout(sub, sid); results.push({ client_id: clientId, sid, ok: true }); log(`backchannel logout sent to ${clientId} sub=${sub} sid=${sid}`); }
          catch (e) { results.push({ client_id: clientId, sid, ok: false, error: e.message }); log(`backchannel logout to ${clientId} failed: ${e.message}`); }
        }
        if (grantId) {
          await Promise.all([provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode].map((m) => m.revokeByGrantId(grantId)));
          await provider.Grant.adapter.destroy(grantId);
        }
      }
      await session.destroy();
    }
    return results;
  }

  return async (req, res) => {
    const { pathname } = new URL(req.url, issuer);
    if (req.method === 'POST' && pathname === rotatePath) {
      const body = await readJson(req);
      const algs = body.alg ? [body.alg] : ALGS;
      const fresh = await Promise.all(algs.map(newKey));
      const kept = keys.filter((k) => !algs.includes(k.alg) || body.keep_old);
      keys = [...fresh, ...kept].sort((x, y) => ALGS.indexOf(x.alg) - ALGS.indexOf(y.alg)); // stable: fresh first per alg
      current = makeProvider();
      log(`rotated keys: ${keys.map((k) => k.kid).join(',')}`);
      return send(res, 200, { kids: fresh.map((k) => k.kid), jwks_kids: keys.map((k) => k.kid) });
    }
    if (req.method === 'POST' && pathname === '/_test/clients') {
      // Adds or replaces a client (by client_id): the relying party's redirect URI names its
      // connection id, known only once the connection exists.
      const client = await readJson(req);
      cfg.clients = [...(cfg.clients || []).filter((c) => c.client_id !== client.client_id), client];
      current = makeProvider();
      log(`clients: ${cfg.clients.map((c) => c.client_id).join(',')}`);
      return send(res, 200, { clients: cfg.clients.map((c) => c.client_id) });
    }
    if (req.method === 'POST' && pathname === '/_test/logout') {
      const { sub } = await readJson(req);
      return send(res, 200, { backchannel: await logoutAccount(sub) });
    }
    const m = pathname.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
    if (m) {
      try { return await interaction(req, res, m[1], m[2]); } catch (e) {
        log(`interaction error: ${e.name}: ${e.message}`);
        return send(res, 400, { error: e.error || 'invalid_request', error_description: e.error_description || e.message });
      }
    }
    return current.callback(req, res);
  };
}

// ---------------------------------------------------------------- mode "forge"
async function forge(issuer) {
  const jose = await load('jose');
  const gen = async (alg, kid) => {
    const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
    return { alg, kid, privateKey, publicKey, jwk: { ...await jose.exportJWK(publicKey), kid, alg, use: 'sig' } };
  };
  const K = { a: await gen('RS256', 'a'), b: await gen('RS256', 'a'), a_es256: await gen('ES256', 'e') };
  const aPem = await jose.exportSPKI(K.a.publicKey);
  const hmacKeys = { hs256_pubkey: aPem, hs256_jwk: JSON.stringify(K.a.jwk) };
  const codes = new Map(); // code -> {nonce, code_challenge, client_id, used}
  let scenario = {};
  let lastTokenRequest = null;

  // Sign `claims` per `sign`, with the default header for that choice overlaid by `header`.
  async function makeJwt(claims, header, sign = 'a', typ = 'JWT') {
    if (sign === 'none') {
      return `${b64u(overlay({ alg: 'none', typ }, header))}.${b64u(claims)}.`;
    }
    if (hmacKeys[sign] !== undefined) {
      const h = overlay({ alg: 'HS256', typ, kid: 'a' }, header);
      const input = `${b64u(h)}.${b64u(claims)}`;
      return `${input}.${crypto.createHmac('sha256', hmacKeys[sign]).update(input).digest('base64url')}`;
    }
    const key = K[sign];
    if (!key) throw new Error(`unknown sign option ${sign}`);
    const h = overlay({ alg: key.alg, typ, kid: key.kid }, header);
    const crit = Object.fromEntries((h.crit || []).map((c) => [c, true]));
    return new jose.CompactSign(Buffer.from(JSON.stringify(claims))).setProtectedHeader(h).sign(key.privateKey, { crit });
  }
  const atHash = (token) => crypto.createHash('sha256').update(token).digest().subarray(0, 16).toString('base64url');
  const discovery = {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    end_session_endpoint: `${issuer}/end_session`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256', 'ES256'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    scopes_supported: ['openid', 'email', 'profile'],
    backchannel_logout_supported: true,
    backchannel_logout_session_supported: true,
  };

  return async (req, res) => {
    const url = new URL(req.url, issuer);
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /.well-known/openid-configuration': return send(res, 200, discovery);
      case 'GET /jwks': return send(res, 200, { keys: (scenario.jwks || ['a', 'a_es256']).map((n) => K[n].jwk) });
      case 'GET /authorize': {
        const q = url.searchParams;
        const code = rand(24);
        codes.set(code, { nonce: q.get('nonce'), code_challenge: q.get('code_challenge'), client_id: q.get('client_id'), used: false });
        const target = new URL(q.get('redirect_uri') || cfg.redirect_uri);
        target.searchParams.set('code', code);
        const state = scenario.state !== undefined ? scenario.state : q.get('state');
        if (state !== null) target.searchParams.set('state', state);
        const iss = scenario.iss_param !== undefined ? scenario.iss_param : issuer;
        if (iss !== null) target.searchParams.set('iss', iss);
        log(`authorize -> code for ${q.get('client_id')}`);
        res.writeHead(302, { location: target.href }); return res.end();
      }
      case 'POST /token': {
        const form = new URLSearchParams(await readBody(req));
        const authz = req.headers.authorization || '';
        const auth = authz.startsWith('Basic ') ? 'client_secret_basic'
          : form.get('client_assertion') ? 'private_key_jwt' : form.get('client_secret') ? 'client_secret_post' : 'none';
        lastTokenRequest = { auth, authorization: authz || null, params: Object.fromEntries(form) };
        const entry = codes.get(form.get('code'));
        const bad = (d) => send(res, 400, { error: 'invalid_grant', error_description: d });
        if (!entry) return bad('unknown code');
        if (entry.used) return bad('code already used');
        entry.used = true;
        if (entry.code_challenge) {
          const v = form.get('code_verifier') || '';
          if (crypto.createHash('sha256').update(v).digest('base64url') !== entry.code_challenge) return bad('PKCE verification failed');
        }
        const accessToken = rand(32);
        let idToken = scenario.id_token_raw;
        if (idToken === undefined) {
          const t = now();
          const mode = scenario.at_hash || 'good';
          const base = {
            iss: issuer, aud: cfg.client_id, sub: 'forge-user', email: 'user@forge.example', email_verified: true,
            nonce: entry.nonce ?? undefined, iat: t, exp: t + 300,
            ...(mode === 'omit' ? {} : { at_hash: atHash(mode === 'bad' ? `${accessToken}x` : accessToken) }),
          };
          idToken = await makeJwt(overlay(base, scenario.claims), scenario.header, scenario.sign);
        }
        log(`token: sign=${scenario.sign || 'a'} at_hash=${scenario.at_hash || 'good'} raw=${scenario.id_token_raw !== undefined}`);
        return send(res, 200, overlay({ access_token: accessToken, token_type: 'Bearer', expires_in: 300, id_token: idToken }, scenario.token_response));
      }
      case 'GET /end_session': {
        const target = url.searchParams.get('post_logout_redirect_uri');
        if (!target) return send(res, 200, '<!DOCTYPE html><p>signed out</p>');
        const u = new URL(target);
        if (url.searchParams.get('state')) u.searchParams.set('state', url.searchParams.get('state'));
        res.writeHead(302, { location: u.href }); return res.end();
      }
      case 'POST /_scenario': scenario = await readJson(req); log(`scenario: ${JSON.stringify(Object.keys(scenario))} sign=${scenario.sign || 'a'}`); return send(res, 200, { ok: true });
      case 'POST /_scenario/reset': scenario = {}; return send(res, 200, { ok: true });
      case 'GET /_last_token_request': return send(res, 200, lastTokenRequest || {});
      case 'POST /_logout_token': {
        const body = await readJson(req);
        const t = now();
        const base = {
          iss: issuer, aud: cfg.client_id, iat: t, exp: t + 120, jti: rand(16), sub: 'forge-user',
          events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
        };
        try {
          return send(res, 200, { logout_token: await makeJwt(overlay(base, body.claims), body.header, body.sign, 'logout+jwt') });
        } catch (e) { return send(res, 400, { error: e.message }); }
      }
      default: return send(res, 404, { error: 'not_found', route });
    }
  };
}

if (cfg.mode === 'op') serve(op);
else if (cfg.mode === 'forge') serve(forge);
else { log(`unknown mode ${cfg.mode}`); process.exit(2); }
