/*
 * handshake.c: handshake messages and HMAC-SHA256 proofs (contract in
 * handshake.h; the state machine that uses them is auth.c).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "dist/handshake.h"

static const char TAG[] = "pogo-hs-1";

static int begin(pogo_buf *b, size_t need, size_t *start) {
  *start = pogo_frame_begin(b, need);
  return *start == (size_t)-1 ? -1 : 0;
}

static void put_name(pogo_buf *b, const char *s, size_t n) {
  pogo_be_put16((unsigned char *)b->data + b->len, (uint16_t)n);
  if (n) memcpy(b->data + b->len + 2, s, n);
  b->len += 2 + n;
}

int pogo_hs_put_hello(pogo_buf *b, int kind, const pogo_hs_hello *h) {
  if (h->name_len == 0 || h->name_len > POGO_NAME_MAX || h->to_len > POGO_NAME_MAX) return -1;
  size_t start, need = 1 + 2 + 4 + 4 + 2 + h->name_len + 2 + h->to_len + POGO_HS_NONCE;
  if (begin(b, need, &start)) return -1;
  unsigned char *p = (unsigned char *)b->data + b->len;
  p[0] = (unsigned char)kind;
  pogo_be_put16(p + 1, h->version);
  pogo_be_put32(p + 3, h->creation);
  pogo_be_put32(p + 7, h->max_frame);
  b->len += 11;
  put_name(b, h->name, h->name_len);
  if (kind == POGO_HS_HELLO) {
    put_name(b, h->to, h->to_len);
  } else {
    memcpy(b->data + b->len, h->nonce, POGO_HS_NONCE);
    b->len += POGO_HS_NONCE;
  }
  return pogo_frame_end(b, start, POGO_HS_MAX_FRAME) < 0 ? -1 : 0;
}

int pogo_hs_put_response(pogo_buf *b, const unsigned char nonce[POGO_HS_NONCE],
                         const unsigned char digest[POGO_HS_DIGEST]) {
  size_t start;
  if (begin(b, 1 + POGO_HS_NONCE + POGO_HS_DIGEST, &start)) return -1;
  b->data[b->len++] = (char)POGO_HS_RESPONSE;
  memcpy(b->data + b->len, nonce, POGO_HS_NONCE);
  memcpy(b->data + b->len + POGO_HS_NONCE, digest, POGO_HS_DIGEST);
  b->len += POGO_HS_NONCE + POGO_HS_DIGEST;
  return pogo_frame_end(b, start, POGO_HS_MAX_FRAME) < 0 ? -1 : 0;
}

int pogo_hs_put_ack(pogo_buf *b, const unsigned char digest[POGO_HS_DIGEST]) {
  size_t start;
  if (begin(b, 1 + POGO_HS_DIGEST, &start)) return -1;
  b->data[b->len++] = (char)POGO_HS_ACK;
  memcpy(b->data + b->len, digest, POGO_HS_DIGEST);
  b->len += POGO_HS_DIGEST;
  return pogo_frame_end(b, start, POGO_HS_MAX_FRAME) < 0 ? -1 : 0;
}

int pogo_hs_put_refuse(pogo_buf *b, const char *reason) {
  size_t n = strlen(reason), start;
  if (n > POGO_HS_REASON_MAX) n = POGO_HS_REASON_MAX;
  if (begin(b, 3 + n, &start)) return -1;
  b->data[b->len++] = (char)POGO_HS_REFUSE;
  put_name(b, reason, n);
  return pogo_frame_end(b, start, POGO_HS_MAX_FRAME) < 0 ? -1 : 0;
}

/* ---- parsing ---- */

typedef struct rd {
  const unsigned char *p, *end;
} rd;

static size_t left(const rd *r) { return (size_t)(r->end - r->p); }

static int take_str(rd *r, const char **s, size_t *n, size_t max) {
  if (left(r) < 2) return -1;
  size_t len = pogo_be_get16(r->p);
  if (len > max || left(r) - 2 < len) return -1;
  *s = (const char *)r->p + 2;
  *n = len;
  r->p += 2 + len;
  return 0;
}

int pogo_hs_parse_hello(const char *p, size_t n, int kind, pogo_hs_hello *h, const char **err) {
  memset(h, 0, sizeof *h);
  rd r = {(const unsigned char *)p, (const unsigned char *)p + n};
  if (left(&r) < 11 || r.p[0] != kind) {
    *err = "malformed handshake message";
    return -1;
  }
  h->version = pogo_be_get16(r.p + 1);
  h->creation = pogo_be_get32(r.p + 3);
  h->max_frame = pogo_be_get32(r.p + 7);
  r.p += 11;
  if (take_str(&r, &h->name, &h->name_len, POGO_NAME_MAX)) {
    *err = "malformed node name in handshake";
    return -1;
  }
  if (kind == POGO_HS_HELLO) {
    if (take_str(&r, &h->to, &h->to_len, POGO_NAME_MAX)) {
      *err = "malformed handshake message";
      return -1;
    }
  } else {
    if (left(&r) < POGO_HS_NONCE) {
      *err = "malformed handshake message";
      return -1;
    }
    memcpy(h->nonce, r.p, POGO_HS_NONCE);
    r.p += POGO_HS_NONCE;
  }
  if (left(&r) != 0) {
    *err = "trailing bytes in handshake message";
    return -1;
  }
  if (!pogo_addr_of_node(h->name, h->name_len, NULL, NULL)) {
    *err = "invalid node name in handshake";
    return -1;
  }
  if (h->max_frame < POGO_HS_MAX_FRAME) {
    *err = "peer's frame size limit is too small";
    return -1;
  }
  return 0;
}

int pogo_hs_parse_response(const char *p, size_t n, unsigned char nonce[POGO_HS_NONCE],
                           unsigned char digest[POGO_HS_DIGEST], const char **err) {
  if (n != 1 + POGO_HS_NONCE + POGO_HS_DIGEST || (unsigned char)p[0] != POGO_HS_RESPONSE) {
    *err = "malformed handshake response";
    return -1;
  }
  memcpy(nonce, p + 1, POGO_HS_NONCE);
  memcpy(digest, p + 1 + POGO_HS_NONCE, POGO_HS_DIGEST);
  return 0;
}

int pogo_hs_parse_ack(const char *p, size_t n, unsigned char digest[POGO_HS_DIGEST], const char **err) {
  if (n != 1 + POGO_HS_DIGEST || (unsigned char)p[0] != POGO_HS_ACK) {
    *err = "malformed handshake acknowledgement";
    return -1;
  }
  memcpy(digest, p + 1, POGO_HS_DIGEST);
  return 0;
}

int pogo_hs_parse_refuse(const char *p, size_t n, char out[POGO_HS_REASON_MAX + 1], const char **err) {
  rd r = {(const unsigned char *)p, (const unsigned char *)p + n};
  const char *s;
  size_t len;
  if (n < 1 || (unsigned char)p[0] != POGO_HS_REFUSE) {
    *err = "malformed refusal";
    return -1;
  }
  r.p++;
  if (take_str(&r, &s, &len, POGO_HS_REASON_MAX) || left(&r) != 0) {
    *err = "malformed refusal";
    return -1;
  }
  for (size_t i = 0; i < len; i++) out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  out[len] = '\0';
  return 0;
}

/* ---- proofs ---- */

int pogo_hs_digest(const char *cookie, size_t cookie_len, char role,
                   const unsigned char nonce_a[POGO_HS_NONCE], const unsigned char nonce_d[POGO_HS_NONCE],
                   uint32_t creation_d, uint32_t creation_a, const char *name_d, size_t name_d_len,
                   const char *name_a, size_t name_a_len, unsigned char out[POGO_HS_DIGEST]) {
  if (name_d_len > POGO_NAME_MAX || name_a_len > POGO_NAME_MAX || cookie_len > 0x7fffffff) return -1;
  unsigned char msg[sizeof TAG + 1 + 2 * POGO_HS_NONCE + 8 + 4 + 2 * POGO_NAME_MAX];
  size_t o = 0;
  memcpy(msg, TAG, sizeof TAG - 1);
  o += sizeof TAG - 1;
  msg[o++] = (unsigned char)role;
  memcpy(msg + o, nonce_a, POGO_HS_NONCE);
  o += POGO_HS_NONCE;
  memcpy(msg + o, nonce_d, POGO_HS_NONCE);
  o += POGO_HS_NONCE;
  pogo_be_put32(msg + o, creation_d);
  pogo_be_put32(msg + o + 4, creation_a);
  o += 8;
  pogo_be_put16(msg + o, (uint16_t)name_d_len);
  memcpy(msg + o + 2, name_d, name_d_len);
  o += 2 + name_d_len;
  pogo_be_put16(msg + o, (uint16_t)name_a_len);
  memcpy(msg + o + 2, name_a, name_a_len);
  o += 2 + name_a_len;
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), cookie, (int)cookie_len, msg, o, out, &len) || len != POGO_HS_DIGEST) return -1;
  return 0;
}

int pogo_hs_digest_eq(const unsigned char a[POGO_HS_DIGEST], const unsigned char b[POGO_HS_DIGEST]) {
  return CRYPTO_memcmp(a, b, POGO_HS_DIGEST) == 0;
}

int pogo_hs_random(unsigned char *out, size_t n) {
  return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
}
