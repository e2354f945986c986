/*
 * wire.c: parsing of data payloads (contract in wire.h).
 */
#include <string.h>

#include "dist/wire.h"

typedef struct rd {
  const unsigned char *p, *end;
} rd;

static int take_id(rd *r, pogo_wire_id *id) {
  if (r->end - r->p < POGO_WIRE_ID) return -1;
  id->creation = pogo_be_get32(r->p);
  id->serial = pogo_be_get64(r->p + 4);
  id->slot = pogo_be_get32(r->p + 12);
  r->p += POGO_WIRE_ID;
  return 0;
}

static int take_u32(rd *r, uint32_t *v) {
  if (r->end - r->p < 4) return -1;
  *v = pogo_be_get32(r->p);
  r->p += 4;
  return 0;
}

static int take_u64(rd *r, uint64_t *v) {
  if (r->end - r->p < 8) return -1;
  *v = pogo_be_get64(r->p);
  r->p += 8;
  return 0;
}

static int take_u8(rd *r, uint8_t *v) {
  if (r->end - r->p < 1) return -1;
  *v = *r->p++;
  return 0;
}

static int take_name(rd *r, const char **name, size_t *len) {
  if (r->end - r->p < 2) return -1;
  size_t n = pogo_be_get16(r->p);
  if (n == 0 || n > POGO_WIRE_NAME_MAX || (size_t)(r->end - r->p - 2) < n) return -1;
  *name = (const char *)r->p + 2;
  *len = n;
  r->p += 2 + n;
  return 0;
}

void pogo_wire_put_name(pogo_buf *b, const char *name, size_t len) {
  pogo_be_put16((unsigned char *)b->data + b->len, (uint16_t)len);
  memcpy(b->data + b->len + 2, name, len);
  b->len += 2 + len;
}

int pogo_wire_parse(const char *p, size_t n, pogo_wire_msg *m, const char **err) {
  memset(m, 0, sizeof *m);
  if (n < 1) {
    *err = "empty payload";
    return -1;
  }
  rd r = {(const unsigned char *)p + 1, (const unsigned char *)p + n};
  m->kind = (uint8_t)p[0];
  int tail = 0, bad = 0;
  switch (m->kind) {
  case POGO_W_SEND:
    bad = take_id(&r, &m->a);
    tail = 1;
    break;
  case POGO_W_SEND_NAMED:
    bad = take_name(&r, &m->name, &m->name_len);
    tail = 1;
    break;
  case POGO_W_LINK:
  case POGO_W_UNLINK:
    bad = take_id(&r, &m->a) || take_id(&r, &m->b);
    break;
  case POGO_W_EXIT:
    bad = take_id(&r, &m->a) || take_id(&r, &m->b) || take_u8(&r, &m->flags);
    tail = 1;
    break;
  case POGO_W_MONITOR:
  case POGO_W_DEMONITOR:
    bad = take_id(&r, &m->a) || take_u64(&r, &m->ref) || take_id(&r, &m->b);
    break;
  case POGO_W_MONITOR_NAME:
  case POGO_W_DEMONITOR_NAME:
    bad = take_id(&r, &m->a) || take_u64(&r, &m->ref) || take_name(&r, &m->name, &m->name_len);
    break;
  case POGO_W_DOWN:
    bad = take_id(&r, &m->a) || take_u64(&r, &m->ref) || take_id(&r, &m->b);
    tail = 1;
    break;
  case POGO_W_TICK:
    break;
  case POGO_W_PING:
  case POGO_W_PONG:
    bad = take_u64(&r, &m->ref);
    break;
  case POGO_W_LEFT:
    bad = take_u32(&r, &m->creation) || take_name(&r, &m->name, &m->name_len);
    break;
  case POGO_W_PEERS:
  case POGO_W_BYE:
    tail = 1;
    break;
  default:
    *err = "unknown frame kind";
    return -1;
  }
  if (bad) {
    *err = "truncated frame fields";
    return -1;
  }
  m->tail = (const char *)r.p;
  m->tail_len = (size_t)(r.end - r.p);
  if (tail && m->tail_len == 0) {
    *err = "frame without its value";
    return -1;
  }
  if (!tail && m->tail_len != 0) {
    *err = "trailing bytes in frame";
    return -1;
  }
  return 0;
}
