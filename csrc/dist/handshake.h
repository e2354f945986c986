/*
 * handshake.h: the messages that open a connection, and the cookie proof
 * (pure apart from OpenSSL: no I/O, no Lua).
 *
 * Contract
 * - Four messages, each one frame (payload limit POGO_HS_MAX_FRAME until the
 *   link is up), dialer D and acceptor A:
 *     D -> A  HELLO      u16 version, u32 creation, u32 max_frame, name, to
 *                        (to: the name D expects to reach, or empty)
 *     A -> D  CHALLENGE  u16 version, u32 creation, u32 max_frame, name, nonce_A
 *     D -> A  RESPONSE   nonce_D, HMAC(cookie, "D" ...)
 *     A -> D  ACK        HMAC(cookie, "A" ...)
 *   and REFUSE (u16 length + reason) from either side at any step, after
 *   which the link is closed. Names are u16 length + bytes.
 * - A digest is HMAC-SHA256 keyed by the cookie over: "pogo-hs-1", the role
 *   byte ('D' for the dialer's proof, 'A' for the acceptor's), nonce_A,
 *   nonce_D, creation_D, creation_A, name_D, name_A (names length-prefixed).
 *   Nonces are 32 random bytes, fresh per handshake, so each side proves it
 *   knows the cookie for this very exchange; the cookie never crosses the wire
 *   and a proof made for one role is useless in the other.
 * - Digests are compared in constant time.
 * - Every parser checks every length against the payload and never reads
 *   past it. Node names must be valid (addr.h: "name@host:port").
 * - Pure apart from OpenSSL (no I/O, no Lua): the fuzz target
 *   csrc/fuzz/fuzz_frame.c compiles it alone, hence its own header. The state
 *   machine that sends and checks these messages is auth.c.
 */
#ifndef POGO_HANDSHAKE_H
#define POGO_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "dist/frame.h"
#include "dist/addr.h"

#define POGO_PROTO_VERSION 3 /* 2: PING and PONG frames; 3: LEFT (wire.h) */
#define POGO_HS_NONCE 32
#define POGO_HS_DIGEST 32
#define POGO_HS_MAX_FRAME 4096
#define POGO_HS_REASON_MAX 255

enum {
  POGO_HS_HELLO = 0x20,
  POGO_HS_CHALLENGE,
  POGO_HS_RESPONSE,
  POGO_HS_ACK,
  POGO_HS_REFUSE
};

typedef struct pogo_hs_hello { /* HELLO and CHALLENGE */
  uint16_t version;
  uint32_t creation, max_frame;
  const char *name;
  size_t name_len;
  const char *to; /* HELLO only; may be empty */
  size_t to_len;
  unsigned char nonce[POGO_HS_NONCE]; /* CHALLENGE only */
} pogo_hs_hello;

/* Append a whole frame to b. Return 0, or -1 out of memory / bad arguments. */
int pogo_hs_put_hello(pogo_buf *b, int kind, const pogo_hs_hello *h);
int pogo_hs_put_response(pogo_buf *b, const unsigned char nonce[POGO_HS_NONCE],
                         const unsigned char digest[POGO_HS_DIGEST]);
int pogo_hs_put_ack(pogo_buf *b, const unsigned char digest[POGO_HS_DIGEST]);
int pogo_hs_put_refuse(pogo_buf *b, const char *reason);

/* Parse a payload of the given kind. 0, or -1 with a static message in *err.
 * Pointers in the result point into the payload. */
int pogo_hs_parse_hello(const char *p, size_t n, int kind, pogo_hs_hello *h, const char **err);
int pogo_hs_parse_response(const char *p, size_t n, unsigned char nonce[POGO_HS_NONCE],
                           unsigned char digest[POGO_HS_DIGEST], const char **err);
int pogo_hs_parse_ack(const char *p, size_t n, unsigned char digest[POGO_HS_DIGEST], const char **err);
/* The reason is copied to out (NUL-terminated, non-printable bytes replaced). */
int pogo_hs_parse_refuse(const char *p, size_t n, char out[POGO_HS_REASON_MAX + 1], const char **err);

/* role 'D' or 'A'. Returns 0, or -1 if HMAC fails. */
int pogo_hs_digest(const char *cookie, size_t cookie_len, char role,
                   const unsigned char nonce_a[POGO_HS_NONCE], const unsigned char nonce_d[POGO_HS_NONCE],
                   uint32_t creation_d, uint32_t creation_a, const char *name_d, size_t name_d_len,
                   const char *name_a, size_t name_a_len, unsigned char out[POGO_HS_DIGEST]);
/* 1 if equal (constant time). */
int pogo_hs_digest_eq(const unsigned char a[POGO_HS_DIGEST], const unsigned char b[POGO_HS_DIGEST]);
/* Fill with cryptographically random bytes: 0, or -1. */
int pogo_hs_random(unsigned char *out, size_t n);

#endif
