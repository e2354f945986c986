/*
 * frame.c: byte buffers and length-prefixed frames (contract in frame.h).
 */
#include <stdlib.h>
#include <string.h>

#include "dist/frame.h"

#define SHRINK_ABOVE (1024 * 1024)

int pogo_buf_reserve(pogo_buf *b, size_t extra) {
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX / 4 - b->len) return -1;
  size_t need = b->len + extra;
  size_t ncap = b->cap ? b->cap : 4096;
  while (ncap < need) ncap *= 2;
  char *np = realloc(b->data, ncap);
  if (!np) return -1;
  b->data = np;
  b->cap = ncap;
  return 0;
}

int pogo_buf_append(pogo_buf *b, const void *p, size_t n) {
  if (n > b->cap - b->len && pogo_buf_reserve(b, n)) return -1;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int pogo_buf_write_cb(void *data, const char *buf, size_t len) {
  return pogo_buf_append(data, buf, len);
}

void pogo_buf_free(pogo_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void pogo_buf_trim(pogo_buf *b, size_t keep) {
  if (b->len == 0 && b->cap > keep) pogo_buf_free(b);
}

size_t pogo_frame_begin(pogo_buf *b, size_t hint) {
  if (pogo_buf_reserve(b, POGO_FRAME_HDR + hint)) return (size_t)-1;
  size_t start = b->len;
  b->len += POGO_FRAME_HDR;
  return start;
}

long pogo_frame_end(pogo_buf *b, size_t start, uint32_t max) {
  size_t n = b->len - start - POGO_FRAME_HDR;
  if (n == 0 || n > max) {
    b->len = start;
    return -1;
  }
  pogo_be_put32((unsigned char *)b->data + start, (uint32_t)n);
  return (long)n;
}

void pogo_frame_reader_init(pogo_frame_reader *r, uint32_t max) {
  memset(r, 0, sizeof *r);
  r->max = max;
}

void pogo_frame_reader_free(pogo_frame_reader *r) {
  free(r->buf);
  r->buf = NULL;
  r->cap = r->start = r->end = 0;
}

char *pogo_frame_reader_space(pogo_frame_reader *r, size_t *avail) {
  size_t pending = r->end - r->start;
  /* a small limit (a handshake) gets a small buffer */
  size_t room = (size_t)r->max + POGO_FRAME_HDR < POGO_FRAME_CHUNK ? (size_t)r->max + POGO_FRAME_HDR : POGO_FRAME_CHUNK;
  if (pending >= POGO_FRAME_HDR && !r->error) {
    uint32_t len = pogo_be_get32((const unsigned char *)r->buf + r->start);
    if (len > 0 && len <= r->max) {
      size_t whole = POGO_FRAME_HDR + (size_t)len;
      if (whole > pending && whole - pending > room) room = whole - pending;
    }
  }
  if (r->start > 0 && (pending == 0 || r->cap - r->end < room)) {
    memmove(r->buf, r->buf + r->start, pending);
    r->start = 0;
    r->end = pending;
  }
  if (r->cap > SHRINK_ABOVE && pending + room <= 2 * POGO_FRAME_CHUNK) {
    char *nb = malloc(2 * POGO_FRAME_CHUNK);
    if (nb) {
      memcpy(nb, r->buf + r->start, pending);
      free(r->buf);
      r->buf = nb;
      r->cap = 2 * POGO_FRAME_CHUNK;
      r->start = 0;
      r->end = pending;
    }
  }
  if (r->cap - r->end < room) {
    size_t ncap = r->cap ? r->cap : 2 * room;
    while (ncap - r->end < room) ncap *= 2;
    char *nb = realloc(r->buf, ncap);
    if (!nb) return NULL;
    r->buf = nb;
    r->cap = ncap;
  }
  *avail = r->cap - r->end;
  return r->buf + r->end;
}

void pogo_frame_reader_commit(pogo_frame_reader *r, size_t n) {
  if (n > r->cap - r->end) n = r->cap - r->end;
  r->end += n;
}

int pogo_frame_next(pogo_frame_reader *r, const char **payload, uint32_t *len) {
  if (r->error) return -1;
  size_t pending = r->end - r->start;
  if (pending < POGO_FRAME_HDR) return 0;
  uint32_t n = pogo_be_get32((const unsigned char *)r->buf + r->start);
  if (n == 0) {
    r->error = "empty frame";
    return -1;
  }
  if (n > r->max) {
    r->error = "frame longer than the size limit";
    return -1;
  }
  if (pending - POGO_FRAME_HDR < n) return 0;
  *payload = r->buf + r->start + POGO_FRAME_HDR;
  *len = n;
  r->start += POGO_FRAME_HDR + (size_t)n;
  if (r->start == r->end) r->start = r->end = 0;
  return 1;
}
