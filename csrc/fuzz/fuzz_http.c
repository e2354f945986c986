/*
 * fuzz_http.c: libFuzzer target for what an HTTP client can send to the web
 * page's server: the request reader (csrc/http_request.c over http_parser).
 *
 * The input after its first byte is a byte stream from a socket; the first
 * byte says how it is cut into reads. Requests are taken one at a time as
 * the server takes them (feed, DONE, next, feed the rest), until the stream
 * ends or a request fails. Every request handed out must hold together: its
 * target and fields inside the head buffer, its body within the limit,
 * and the bytes consumed within what was fed; an error must name one of the
 * statuses the server answers with. (Sanitizers catch any read past a buffer.)
 *
 * Build and run: bash csrc/fuzz/run.sh [seconds]
 */
// fuzz-sources: http_request.c
// fuzz-libs: -lhttp_parser
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_request.h"

static void check(const pogo_http_req *r) {
  if (r->head_len > sizeof r->head) abort();
  if ((uint64_t)r->target + r->target_len > r->head_len) abort();
  if (r->nfields > POGO_HTTP_HEADERS_MAX) abort();
  for (uint32_t i = 0; i < r->nfields; i++) {
    const pogo_http_field *f = &r->fields[i];
    if ((uint64_t)f->name + f->name_len > r->head_len) abort();
    if (f->value_len && (uint64_t)f->value + f->value_len > r->head_len) abort();
    for (uint32_t k = 0; k < f->name_len; k++) {
      char ch = r->head[f->name + k];
      if (ch >= 'A' && ch <= 'Z') abort(); /* names are lower case */
    }
  }
  if (r->body_len > POGO_HTTP_BODY_MAX || (r->body_len && !r->body)) abort();
  if (!r->method) abort();
  size_t len;
  (void)pogo_http_req_header(r, "host", &len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t cut = (size_t)(data[0] % 64) + 1; /* read size */
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  pogo_http_req *r = malloc(sizeof *r);
  if (!r) return 0;
  pogo_http_req_init(r);
  size_t off = 0;
  size_t pending = 0; /* bytes read and not consumed, before off */
  int requests = 0;
  while (off < n || pending) {
    size_t take = n - off < cut ? n - off : cut;
    size_t avail = pending + take;
    size_t used = 0;
    int res = pogo_http_req_feed(r, p + off - pending, avail, &used);
    if (used > avail) abort();
    off += take;
    pending = avail - used;
    if (res == POGO_HTTP_ERROR) {
      if (r->status != 400 && r->status != 413 && r->status != 431) abort();
      break;
    }
    if (res == POGO_HTTP_DONE) {
      check(r);
      if (++requests > 10000) abort();
      pogo_http_req_next(r);
      continue;
    }
    if (take == 0 && pending) break; /* the rest is an incomplete request */
  }
  pogo_http_req_free(r);
  free(r);
  return 0;
}
