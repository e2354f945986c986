/*
 * http_request.h: one HTTP/1.x request read from a byte stream, parsed by
 * Node's http_parser (Debian's libhttp-parser) into its method, target,
 * headers and body (pure: no I/O, no Lua).
 *
 * Contract
 * - Bytes are fed as they arrive, in pieces of any size. pogo_http_req_feed
 *   consumes bytes up to the end of one complete request and stops there
 *   (http_parser is paused), so pipelined requests are handed out one at a
 *   time: after POGO_HTTP_DONE the caller answers, calls
 *   pogo_http_req_next, and feeds the bytes that were not consumed.
 * - Limits, each answered with its status: a request line and headers of
 *   more than POGO_HTTP_HEAD_MAX bytes or more than POGO_HTTP_HEADERS_MAX
 *   headers: 431; a body of more than POGO_HTTP_BODY_MAX bytes: 413; bytes
 *   that are not HTTP, a CONNECT or an upgrade (WebSocket): 400. After an
 *   error the request stays failed (the connection is to be closed).
 * - The target, header names and values are kept in one buffer (names in
 *   lower case); pieces of one field split across reads are joined.
 * - No global state: http_parser's settings are a const table, and its
 *   global header-size setting is left alone (the limits here are per
 *   request).
 * - Fuzzed by csrc/fuzz/fuzz_http.c, which compiles this file alone.
 */
#ifndef POGO_HTTP_REQUEST_H
#define POGO_HTTP_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#define POGO_HTTP_HEAD_MAX (16 * 1024)
#define POGO_HTTP_HEADERS_MAX 64
#define POGO_HTTP_BODY_MAX (64 * 1024)

enum { POGO_HTTP_ERROR = -1, POGO_HTTP_MORE = 0, POGO_HTTP_DONE = 1 };

typedef struct pogo_http_field { /* offsets into pogo_http_req.head */
  uint32_t name, name_len, value, value_len;
} pogo_http_field;

typedef struct pogo_http_req {
  http_parser parser;
  char head[POGO_HTTP_HEAD_MAX]; /* target, then header names and values */
  uint32_t head_len;
  uint32_t target, target_len;
  pogo_http_field fields[POGO_HTTP_HEADERS_MAX];
  uint32_t nfields;
  int in_value;  /* the last header piece was a value (a name piece starts a new field) */
  char *body;    /* malloc'd once a body arrives */
  size_t body_len, body_cap;
  int status;    /* POGO_HTTP_ERROR: the status to answer (400, 413, 431) */
  int done;      /* a whole request was read */
  int keep_alive;
  const char *method; /* static string of http_parser ("GET") */
  int http_major, http_minor;
} pogo_http_req;

void pogo_http_req_init(pogo_http_req *r);
void pogo_http_req_free(pogo_http_req *r);
/* Feed n bytes at p; *used gets how many were consumed. POGO_HTTP_MORE: all
 * consumed, the request is not complete; POGO_HTTP_DONE: a request is
 * complete (the bytes after it are not consumed); POGO_HTTP_ERROR: r->status
 * says what to answer. */
int pogo_http_req_feed(pogo_http_req *r, const char *p, size_t n, size_t *used);
/* Forget the request handed out (after DONE): ready for the next one. */
void pogo_http_req_next(pogo_http_req *r);
/* The value of header `name` (lower case), or NULL; *len gets its length. */
const char *pogo_http_req_header(const pogo_http_req *r, const char *name, size_t *len);

#endif
