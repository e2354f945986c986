/*
 * tls.c: mutual TLS 1.3 on node links, OpenSSL driven by the libuv streams
 * of conn.c (never a blocking socket).
 *
 * Contract
 * - With opts.tls = {cert =, key =, ca =}, every connection of the node runs
 *   TLS 1.3 before anything else: the dialer is the TLS client, the acceptor
 *   the server, and each verifies the other's certificate chain against `ca`
 *   (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, both roles). The cookie
 *   handshake (auth.c) and every frame then run inside the tunnel: the cookie
 *   still decides who may talk, TLS keeps the bytes private and unforgeable
 *   on the path. Any certificate signed by `ca` is a member (no host name
 *   check: a cluster's CA is its list of members).
 * - OpenSSL reads and writes through a BIO of our own: reads take the
 *   ciphertext straight from the read callback's buffer, writes append it to
 *   `enc`, which conn.c writes like a plain batch (pogo_conn_write). A whole
 *   batch of frames (c->out) is encrypted by one SSL_write (records of 16
 *   KiB), so conn.c's batching carries over: no record per frame. A plain
 *   connection never enters this file (c->tls is NULL).
 * - Frames queued before the TLS handshake is done (the dialer's HELLO) wait
 *   in c->out; the handshake's deadline is the mesh's (timeout_ms).
 * - Refusals, each logged in one line by this side:
 *   - a TLS handshake that fails (wrong CA, an expired certificate, none): the
 *     reason (OpenSSL's, with the certificate verification error), then the
 *     alert goes out before the close, so the peer can log why too;
 *   - plain bytes at a TLS node: a pogo HELLO means a node without TLS
 *     dialed; anything else is "not TLS". Both are answered with a plain
 *     REFUSE that a plain dialer logs ("refused by peer: ...");
 *   - a plain node reading a TLS ClientHello (pogo_tls_refuse_tls, called by
 *     conn.c when the bytes do not parse as a frame) answers a plain REFUSE,
 *     which the TLS dialer recognises and logs.
 * - Errors never abort: the connection closes, the node goes on.
 * - Trust: every certificate of the `ca` file is an anchor, an intermediate
 *   CA too (X509_V_FLAG_PARTIAL_CHAIN): a cluster whose CA is an
 *   intermediate gives that one, not its root.
 * - pogo_tls_configure checks the options (files readable, a PEM certificate
 *   and key that match, a loadable CA) and reports a clear error for
 *   pogo.start; so does a certificate that peers would refuse for its
 *   purpose (X509_check_purpose, as their verification does): a node is
 *   the TLS server when dialed and the client when dialing, so its
 *   certificate must serve both (an extendedKeyUsage without serverAuth or
 *   clientAuth, a keyUsage without digitalSignature; the message names the
 *   file and what is missing); one without extendedKeyUsage serves any
 *   purpose. A certificate that does not verify against `ca` now (expired,
 *   another CA) is logged at start: peers will refuse this node.
 * - The node's settings (pogo_tls_ctx: SSL_CTX, BIO method) are reference
 *   counted: connections still closing keep them alive after the transport
 *   is gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dist/dist.h"

#define TLS_RBUF (64 * 1024) /* ciphertext read at once */
#define TLS_RECORD_HANDSHAKE 0x16
#define TLS_RECORD_ALERT 0x15
#define TLS_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

struct pogo_tls_ctx {
  SSL_CTX *ctx;
  BIO_METHOD *method;
  int refs; /* the transport's, plus one per connection */
};

struct pogo_tls {
  pogo_tls_ctx *x;
  SSL *ssl;
  const char *in; /* ciphertext being handed to OpenSSL */
  size_t in_len;
  pogo_buf enc; /* ciphertext to write */
  char *rbuf;   /* the read callback's buffer */
  uint8_t ready; /* the TLS handshake is done */
  uint8_t seen;  /* the peer's first bytes were checked */
};

static void ctx_unref(pogo_tls_ctx *x) {
  if (!x || --x->refs > 0) return;
  SSL_CTX_free(x->ctx);
  BIO_meth_free(x->method);
  free(x);
}

void pogo_tls_ctx_free(pogo_tls_ctx *x) { ctx_unref(x); }

/* ---- the BIO between OpenSSL and the connection's buffers ---- */

static int bio_write(BIO *b, const char *p, int n) {
  pogo_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (n <= 0) return 0;
  return pogo_buf_append(&t->enc, p, (size_t)n) == 0 ? n : -1;
}

static int bio_read(BIO *b, char *p, int n) {
  pogo_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->in_len == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  size_t k = n > 0 && (size_t)n < t->in_len ? (size_t)n : t->in_len;
  memcpy(p, t->in, k);
  t->in += k;
  t->in_len -= k;
  return (int)k;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* ---- settings ---- */

/* The reason OpenSSL gives for its last failure (clears its error queue). */
static void ssl_reason(char *out, size_t cap) {
  unsigned long e = ERR_peek_last_error();
  const char *s = e ? ERR_reason_error_string(e) : NULL;
  snprintf(out, cap, "%s", s ? s : "unknown error");
  ERR_clear_error();
}

/* Is path a readable file? Otherwise err says why, naming the option. */
static int readable(const char *opt, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f) {
    fclose(f);
    return 1;
  }
  char buf[128];
  const char *why = strerror_r(errno, buf, sizeof buf);
  snprintf(err, errlen, "tls.%s: cannot read %s: %s", opt, path, why);
  return 0;
}

static const char *tls_field(lua_State *L, int t, const char *k, char *err, size_t errlen) {
  lua_getfield(L, t, k);
  const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the string stays alive in the table */
  if (!v || !*v) snprintf(err, errlen, "tls.%s must be a file name (tls = {cert =, key =, ca =})", k);
  return v && *v ? v : NULL;
}

/* The passphrase callback of an encrypted key: none is given (OpenSSL's
 * default would prompt on the terminal, blocking the node's loop and its
 * host's); it notes that the key asked for one. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag;
  *(int *)u = 1;
  return -1;
}

/* The private key in path, or NULL with err. */
static EVP_PKEY *load_key(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  int encrypted = 0;
  EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, no_passphrase, &encrypted) : NULL;
  if (f) fclose(f);
  if (!k && encrypted) {
    ERR_clear_error();
    snprintf(err, errlen, "tls.key: %s is encrypted: a key with a passphrase is not supported "
             "(keep it unencrypted, readable by the node only: openssl pkey -in KEY -out KEY2)", path);
  } else if (!k) {
    char why[160];
    ssl_reason(why, sizeof why);
    snprintf(err, errlen, "tls.key: %s holds no usable PEM private key (%s)", path, why);
  }
  return k;
}

/* Does this node's own certificate verify against the CA now? Logs if not. */
static void check_own(pogo_dist *d, SSL_CTX *ctx, const char *cert, const char *ca) {
  X509 *own = SSL_CTX_get0_certificate(ctx);
  STACK_OF(X509) *chain = NULL;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  X509_STORE_CTX *s = X509_STORE_CTX_new();
  if (!own || !s || X509_STORE_CTX_init(s, SSL_CTX_get_cert_store(ctx), own, chain) != 1) {
    X509_STORE_CTX_free(s);
    ERR_clear_error();
    return;
  }
  if (X509_verify_cert(s) != 1)
    pogo_log_at(d, POGO_LOG_WARNING, NULL,
                "this node's certificate %s does not verify against %s (%s): peers will refuse it", cert, ca,
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(s)));
  X509_STORE_CTX_free(s);
  ERR_clear_error();
}

/* Why the leaf certificate x cannot serve for `purpose` (X509_PURPOSE_SSL_SERVER
 * or _CLIENT), as a peer's verification would find (X509_check_purpose):
 * NULL if it can. eku: that purpose's extendedKeyUsage name. */
static const char *purpose_gap(X509 *x, int purpose, uint32_t xku, uint32_t ku, const char *eku, char *buf,
                               size_t cap) {
  if (X509_check_purpose(x, purpose, 0) == 1) return NULL;
  uint32_t flags = X509_get_extension_flags(x);
  if ((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(x) & xku))
    snprintf(buf, cap, "its extendedKeyUsage lacks %s", eku);
  else if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & ku))
    snprintf(buf, cap, "its keyUsage lacks digitalSignature (needed for %s)", eku);
  else
    snprintf(buf, cap, "it is not valid for %s", eku);
  return buf;
}

/* Can this node's certificate serve both ends of a link (the TLS server when
 * dialed, the client when dialing)? Else err says which is missing. A
 * certificate without extendedKeyUsage serves any purpose. */
static int check_purpose(SSL_CTX *ctx, const char *cert, char *err, size_t errlen) {
  X509 *x = SSL_CTX_get0_certificate(ctx);
  char sb[96], cb[96];
  const char *s = purpose_gap(x, X509_PURPOSE_SSL_SERVER, XKU_SSL_SERVER,
                              KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT | KU_KEY_AGREEMENT, "serverAuth", sb,
                              sizeof sb);
  const char *c = purpose_gap(x, X509_PURPOSE_SSL_CLIENT, XKU_SSL_CLIENT, KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT,
                              "clientAuth", cb, sizeof cb);
  ERR_clear_error();
  if (!s && !c) return 0;
  snprintf(err, errlen,
           "tls.cert: %s cannot be used for %s: %s%s%s (a node is the TLS server when dialed and the client when "
           "dialing: give it extendedKeyUsage = serverAuth, clientAuth)",
           cert, s && c ? "either end of a link" : s ? "accepting links" : "dialing", s ? s : c, s && c ? "; " : "",
           s && c ? c : "");
  return -1;
}

static int configure(pogo_dist *d, const char *cert, const char *key, const char *ca, char *err, size_t errlen) {
  if (!readable("cert", cert, err, errlen) || !readable("key", key, err, errlen) ||
      !readable("ca", ca, err, errlen))
    return -1;
  char why[160];
  ERR_clear_error();
  pogo_tls_ctx *x = calloc(1, sizeof *x);
  if (!x) goto oom;
  x->refs = 1;
  x->ctx = SSL_CTX_new(TLS_method());
  x->method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pogo link");
  if (!x->ctx || !x->method || !BIO_meth_set_write(x->method, bio_write) ||
      !BIO_meth_set_read(x->method, bio_read) || !BIO_meth_set_ctrl(x->method, bio_ctrl))
    goto oom;
  SSL_CTX *ctx = x->ctx;
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) goto oom;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    ssl_reason(why, sizeof why);
    snprintf(err, errlen, "tls.cert: %s holds no usable PEM certificate (%s)", cert, why);
    goto fail;
  }
  EVP_PKEY *pk = load_key(key, err, errlen);
  if (!pk) goto fail;
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pk) != 1) {
    EVP_PKEY_free(pk);
    ERR_clear_error();
    snprintf(err, errlen, "tls.key: %s is not the private key of the certificate %s", key, cert);
    goto fail;
  }
  if (check_purpose(ctx, cert, err, errlen) != 0) {
    EVP_PKEY_free(pk);
    goto fail;
  }
  int used = SSL_CTX_use_PrivateKey(ctx, pk);
  EVP_PKEY_free(pk);
  if (used != 1) goto oom;
  if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
    ssl_reason(why, sizeof why);
    snprintf(err, errlen, "tls.ca: %s holds no usable PEM certificate (%s)", ca, why);
    goto fail;
  }
  /* the CA file is the trust: an intermediate CA given there is an anchor
   * too (else OpenSSL wants the chain to end at a self-signed root) */
  X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), X509_V_FLAG_PARTIAL_CHAIN);
  STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
  if (names) SSL_CTX_set_client_CA_list(ctx, names);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  SSL_CTX_set_num_tickets(ctx, 0); /* links are long-lived: no resumption */
  SSL_CTX_set_read_ahead(ctx, 1);   /* take whole reads: fewer BIO calls per record */
  /* AES-128-GCM first: the cheapest per record with AES-NI (small records dominate) */
  if (SSL_CTX_set_ciphersuites(ctx, TLS_SUITES) != 1) goto oom;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  ERR_clear_error();
  check_own(d, ctx, cert, ca);
  d->tls = x;
  return 0;
oom:
  snprintf(err, errlen, "tls: out of memory");
fail:
  ERR_clear_error();
  ctx_unref(x);
  return -1;
}

int pogo_tls_configure(pogo_dist *d, lua_State *L, int opts_idx, char *err, size_t errlen) {
  opts_idx = lua_absindex(L, opts_idx);
  lua_getfield(L, opts_idx, "tls");
  int t = lua_gettop(L), r = 0;
  if (lua_istable(L, t)) {
    const char *cert = tls_field(L, t, "cert", err, errlen);
    const char *key = cert ? tls_field(L, t, "key", err, errlen) : NULL;
    const char *ca = key ? tls_field(L, t, "ca", err, errlen) : NULL;
    r = ca ? configure(d, cert, key, ca, err, errlen) : -1;
  } else if (!lua_isnil(L, t) && !(lua_isboolean(L, t) && !lua_toboolean(L, t))) {
    snprintf(err, errlen, "tls must be a table {cert =, key =, ca =}");
    r = -1;
  }
  lua_pop(L, 1);
  return r;
}

/* ---- one connection ---- */

int pogo_tls_attach(pogo_conn *c) {
  pogo_tls_ctx *x = c->d->tls;
  pogo_tls *t = calloc(1, sizeof *t);
  if (!t) return -1;
  t->rbuf = malloc(TLS_RBUF);
  t->ssl = SSL_new(x->ctx);
  BIO *b = BIO_new(x->method);
  if (!t->rbuf || !t->ssl || !b) {
    BIO_free(b);
    SSL_free(t->ssl);
    free(t->rbuf);
    free(t);
    ERR_clear_error();
    return -1;
  }
  BIO_set_data(b, t);
  BIO_set_init(b, 1);
  SSL_set_bio(t->ssl, b, b);
  t->x = x;
  x->refs++;
  c->tls = t;
  if (!c->outgoing) {
    SSL_set_accept_state(t->ssl);
    return 0;
  }
  SSL_set_connect_state(t->ssl);
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl); /* the ClientHello, into enc */
  if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
    ERR_clear_error();
    return -1;
  }
  pogo_conn_dirty(c);
  return 0;
}

void pogo_tls_free(pogo_conn *c) {
  pogo_tls *t = c->tls;
  if (!t) return;
  c->tls = NULL;
  SSL_free(t->ssl); /* and the BIO */
  pogo_buf_free(&t->enc);
  free(t->rbuf);
  ctx_unref(t->x);
  free(t);
}

int pogo_tls_pending(const pogo_conn *c) { return c->tls && c->tls->enc.len > 0; }

void pogo_tls_alloc(pogo_conn *c, uv_buf_t *buf) { *buf = uv_buf_init(c->tls->rbuf, TLS_RBUF); }

/* Why the TLS session failed, in words (clears OpenSSL's error queue). */
static void failure(pogo_tls *t, int ssl_err, char *out, size_t cap) {
  unsigned long e = ERR_peek_error();
  int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
  if (!e) {
    snprintf(out, cap, ssl_err == SSL_ERROR_ZERO_RETURN ? "the peer closed the TLS session"
                                                        : "the connection closed during TLS");
  } else if (lib == ERR_LIB_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    snprintf(out, cap, "the peer's certificate was rejected: %s",
             X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
  } else if (lib == ERR_LIB_SSL && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    snprintf(out, cap, "the peer sent no certificate");
  } else if (lib == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET) {
    snprintf(out, cap, "the peer rejected this node (%s)", ERR_reason_error_string(e));
  } else {
    const char *s = ERR_reason_error_string(e);
    snprintf(out, cap, "%s", s ? s : "unknown error");
  }
  ERR_clear_error();
}

/* Write what OpenSSL has to say (an alert) now, if the socket takes it: c
 * is about to close. */
static void push_now(pogo_conn *c) {
  pogo_tls *t = c->tls;
  if (c->writing || !t || !t->enc.len) return;
  uv_buf_t b = uv_buf_init(t->enc.data, (unsigned int)t->enc.len);
  (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  t->enc.len = 0;
}

/* The TLS session of c failed: log, tell the mesh, close. */
static void fail(pogo_conn *c, const char *why) {
  pogo_dist *d = c->d;
  char msg[320];
  snprintf(msg, sizeof msg, "%s: %s", c->tls->ready ? "TLS" : "TLS handshake failed", why);
  if (c->state == CS_UP) {
    pogo_log_at(d, POGO_LOG_WARNING, c->peer_name, "closing link to %s: %s", c->peer_name, msg);
    push_now(c);
    pogo_mesh_conn_lost(c, "protocol_error");
  } else if (c->outgoing) {
    push_now(c);
    pogo_mesh_dial_failed(c, d->N->L, msg);
  } else {
    pogo_log_at(d, POGO_LOG_WARNING, c->addr, "refused %s: %s", c->addr, msg);
    pogo_conn_close_graceful(c); /* writes the alert, then closes */
    pogo_mesh_schedule(d);
  }
}

/* The peer's first bytes are not TLS. */
static void not_tls(pogo_conn *c, const char *p, size_t n) {
  pogo_dist *d = c->d;
  uint32_t len = n >= 4 ? pogo_be_get32((const unsigned char *)p) : 0;
  if (c->outgoing) { /* answered in plain: a node without TLS refusing us? */
    char reason[POGO_HS_REASON_MAX + 1], msg[POGO_HS_REASON_MAX + 64];
    const char *err;
    if (n >= 5 && len >= 1 && len <= n - 4 && (unsigned char)p[4] == POGO_HS_REFUSE &&
        pogo_hs_parse_refuse(p + 4, len, reason, &err) == 0)
      snprintf(msg, sizeof msg, "the peer does not use TLS (it refused: %s)", reason);
    else
      snprintf(msg, sizeof msg, "the peer does not speak TLS");
    pogo_mesh_dial_failed(c, d->N->L, msg);
    return;
  }
  int hello = n >= 5 && len >= 1 && len <= POGO_HS_MAX_FRAME && (unsigned char)p[4] == POGO_HS_HELLO;
  if (hello)
    pogo_log_at(d, POGO_LOG_WARNING, c->addr,
                "refused %s: a node without TLS dialed this TLS node (TLS must be on for every node or none)", c->addr);
  else
    pogo_log_at(d, POGO_LOG_WARNING, c->addr, "refused %s: not TLS (plain bytes at this TLS node's port)", c->addr);
  /* answer in plain, so that a plain dialer can tell why (p is freed here) */
  pogo_tls_free(c);
  pogo_hs_put_refuse(&c->out, "this node requires TLS and the dialer does not use it");
  pogo_conn_close_graceful(c);
  pogo_mesh_schedule(d);
}

/* Run the TLS handshake on what arrived: 0 done, 1 more bytes needed, -1 failed. */
static int handshake(pogo_conn *c) {
  pogo_tls *t = c->tls;
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->ready = 1;
    pogo_conn_dirty(c); /* the handshake's last bytes and the frames waiting in c->out */
    return 0;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    if (t->enc.len) pogo_conn_dirty(c);
    return 1;
  }
  char why[256];
  failure(t, e, why, sizeof why);
  fail(c, why);
  return -1;
}

/* Decrypt into the frame reader and hand the frames on, until OpenSSL needs more. */
static void decrypt(pogo_conn *c) {
  pogo_tls *t = c->tls;
  for (;;) {
    size_t avail = 0, got = 0;
    char *space = pogo_frame_reader_space(&c->in, &avail);
    if (!space) {
      pogo_mesh_conn_lost(c, "out of memory");
      return;
    }
    if (SSL_read_ex(t->ssl, space, avail, &got) != 1) {
      int e = SSL_get_error(t->ssl, 0);
      if (e == SSL_ERROR_WANT_READ) break;
      if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        pogo_mesh_conn_lost(c, "connection_closed");
        return;
      }
      char why[256];
      failure(t, e, why, sizeof why);
      fail(c, why);
      return;
    }
    pogo_frame_reader_commit(&c->in, got);
    if (pogo_conn_frames(c) != 0) return;
    if (t->in_len == 0 && !SSL_has_pending(t->ssl)) break; /* all read: no call just to hear WANT_READ */
  }
  if (t->enc.len) pogo_conn_dirty(c);
}

void pogo_tls_read(pogo_conn *c, const char *p, size_t n) {
  pogo_tls *t = c->tls;
  if (!t->seen) {
    t->seen = 1;
    unsigned char b = (unsigned char)p[0];
    if (b != TLS_RECORD_HANDSHAKE && !(c->outgoing && b == TLS_RECORD_ALERT)) {
      not_tls(c, p, n);
      return;
    }
  }
  t->in = p;
  t->in_len = n;
  /* SSL_get_error reads the thread's error queue: it must start empty (a
   * success adds nothing, and every failure here clears it; peeking is
   * cheaper than clearing) */
  if (ERR_peek_error()) ERR_clear_error();
  if (t->ready || handshake(c) == 0) decrypt(c);
  t->in = NULL; /* what is left (c closed) is dropped */
  t->in_len = 0;
}

void pogo_tls_flush(pogo_conn *c) {
  pogo_tls *t = c->tls;
  if (t->ready && c->out.len) {
    size_t w = 0; /* never "want read/write": enc grows as needed */
    if (SSL_write_ex(t->ssl, c->out.data, c->out.len, &w) != 1 || w != c->out.len) {
      ERR_clear_error();
      c->fail = "TLS write error";
      pogo_conn_dirty(c);
      return;
    }
    c->out.len = 0;
    pogo_buf_trim(&c->out, 4 * POGO_FLUSH_AT);
  }
  if (t->enc.len == 0) pogo_conn_written(c);
  else pogo_conn_write(c, &t->enc);
}

/* ---- a plain node ---- */

int pogo_tls_refuse_tls(pogo_conn *c) {
  size_t n = pogo_frame_pending(&c->in);
  const unsigned char *p = (const unsigned char *)c->in.buf + c->in.start;
  if (c->tls || n < 3 || p[0] != TLS_RECORD_HANDSHAKE || p[1] != 0x03) return 0;
  pogo_dist *d = c->d;
  pogo_log_at(d, POGO_LOG_WARNING, c->addr,
              "refused %s: a TLS node dialed this node, which does not use TLS (TLS must be on for every node or none)",
              c->addr);
  c->in.start = c->in.end = 0;
  pogo_hs_put_refuse(&c->out, "this node does not use TLS and the dialer does");
  pogo_conn_close_graceful(c);
  pogo_mesh_schedule(d);
  return 1;
}
