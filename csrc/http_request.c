/*
 * http_request.c: HTTP/1.x requests parsed by http_parser (contract in
 * http_request.h).
 *
 * http_parser calls back with pieces of the target, of header names and of
 * values, which may be cut anywhere by the reads. A name piece after a
 * value starts a new field; other pieces extend the current one. Everything
 * goes into r->head, so the limit on the head is one check. At the end of a
 * message the parser is paused: http_parser_execute returns there, and the
 * bytes of a pipelined next request stay with the caller.
 */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "http_request.h"

static pogo_http_req *req_of(http_parser *p) { return p->data; }

static int fail(pogo_http_req *r, int status) {
  if (!r->status) r->status = status;
  return -1; /* stops http_parser (HPE_CB_*) */
}

/* Append a piece to r->head: 0, or -1 (431) past the limit. */
static int put(pogo_http_req *r, const char *at, size_t n, int lower) {
  if (n > sizeof r->head - r->head_len) return fail(r, 431);
  char *dst = r->head + r->head_len;
  if (lower) {
    for (size_t i = 0; i < n; i++) {
      unsigned char ch = (unsigned char)at[i];
      dst[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
  } else {
    memcpy(dst, at, n);
  }
  r->head_len += (uint32_t)n;
  return 0;
}

static int on_message_begin(http_parser *p) {
  pogo_http_req *r = req_of(p);
  r->head_len = r->target = r->target_len = r->nfields = 0;
  r->in_value = 0;
  r->body_len = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  pogo_http_req *r = req_of(p);
  if (r->target_len == 0) r->target = r->head_len;
  if (put(r, at, n, 0) != 0) return -1;
  r->target_len += (uint32_t)n;
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  pogo_http_req *r = req_of(p);
  if (r->nfields == 0 || r->in_value) {
    if (r->nfields == POGO_HTTP_HEADERS_MAX) return fail(r, 431);
    pogo_http_field *f = &r->fields[r->nfields++];
    f->name = r->head_len;
    f->name_len = f->value = f->value_len = 0;
    r->in_value = 0;
  }
  if (put(r, at, n, 1) != 0) return -1;
  r->fields[r->nfields - 1].name_len += (uint32_t)n;
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  pogo_http_req *r = req_of(p);
  if (r->nfields == 0) return fail(r, 400);
  pogo_http_field *f = &r->fields[r->nfields - 1];
  if (!r->in_value) {
    f->value = r->head_len;
    r->in_value = 1;
  }
  if (put(r, at, n, 0) != 0) return -1;
  f->value_len += (uint32_t)n;
  return 0;
}

static int on_headers_complete(http_parser *p) {
  pogo_http_req *r = req_of(p);
  if (p->method == HTTP_CONNECT || p->upgrade) return fail(r, 400);
  if (p->content_length != ULLONG_MAX && p->content_length > POGO_HTTP_BODY_MAX) return fail(r, 413);
  r->method = http_method_str((enum http_method)p->method);
  r->http_major = p->http_major;
  r->http_minor = p->http_minor;
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  pogo_http_req *r = req_of(p);
  if (n > POGO_HTTP_BODY_MAX - r->body_len) return fail(r, 413);
  if (r->body_len + n > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : 1024;
    while (cap < r->body_len + n) cap *= 2;
    if (cap > POGO_HTTP_BODY_MAX) cap = POGO_HTTP_BODY_MAX;
    char *nb = realloc(r->body, cap);
    if (!nb) return fail(r, 413);
    r->body = nb;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, at, n);
  r->body_len += n;
  return 0;
}

static int on_message_complete(http_parser *p) {
  pogo_http_req *r = req_of(p);
  r->done = 1;
  r->keep_alive = http_should_keep_alive(p);
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

void pogo_http_req_init(pogo_http_req *r) {
  r->head_len = r->target = r->target_len = r->nfields = 0;
  r->in_value = 0;
  r->body = NULL;
  r->body_len = r->body_cap = 0;
  r->status = r->done = r->keep_alive = 0;
  r->method = NULL;
  http_parser_init(&r->parser, HTTP_REQUEST);
  r->parser.data = r;
}

void pogo_http_req_free(pogo_http_req *r) {
  free(r->body);
  r->body = NULL;
  r->body_cap = r->body_len = 0;
}

int pogo_http_req_feed(pogo_http_req *r, const char *p, size_t n, size_t *used) {
  *used = 0;
  if (r->status) return POGO_HTTP_ERROR;
  if (r->done) return POGO_HTTP_DONE;
  if (n == 0) return POGO_HTTP_MORE;
  size_t k = http_parser_execute(&r->parser, &settings, p, n);
  *used = k > n ? n : k;
  enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
  if (r->status) return POGO_HTTP_ERROR;
  if (r->done) return POGO_HTTP_DONE; /* paused at the end of the message */
  if (e != HPE_OK) {
    r->status = 400;
    return POGO_HTTP_ERROR;
  }
  if (r->parser.upgrade) { /* reached only without headers_complete's check */
    r->status = 400;
    return POGO_HTTP_ERROR;
  }
  return POGO_HTTP_MORE;
}

void pogo_http_req_next(pogo_http_req *r) {
  r->done = 0;
  r->keep_alive = 0;
  r->method = NULL;
  r->head_len = r->target = r->target_len = r->nfields = 0;
  r->in_value = 0;
  r->body_len = 0;
  http_parser_pause(&r->parser, 0);
}

const char *pogo_http_req_header(const pogo_http_req *r, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (uint32_t i = 0; i < r->nfields; i++) {
    const pogo_http_field *f = &r->fields[i];
    if (f->name_len == nl && memcmp(r->head + f->name, name, nl) == 0) {
      *len = f->value_len;
      return r->head + f->value;
    }
  }
  return NULL;
}
