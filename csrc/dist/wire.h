/*
 * wire.h: what a frame's payload says once a connection is up (pure: no I/O, no Lua).
 *
 * Contract
 * - A payload is one kind byte, fixed fields, then (for some kinds) a tail of
 *   codec-encoded values. Fixed fields are big-endian. An id is 16 bytes:
 *   u32 creation, u64 serial, u32 slot; ids in a frame always belong to the
 *   sender's node or the receiver's node, so no node name is sent with them.
 *   A name is u16 length + bytes (1..POGO_WIRE_NAME_MAX).
 *
 *     SEND            to, tail = msg
 *     SEND_NAMED      name, tail = msg
 *     LINK / UNLINK   from, to
 *     EXIT            from, to, u8 flags (1 = from a link), tail = reason
 *     MONITOR         watcher, u64 ref, target
 *     MONITOR_NAME    watcher, u64 ref, name
 *     DEMONITOR       watcher, u64 ref, target
 *     DEMONITOR_NAME  watcher, u64 ref, name
 *     DOWN            watcher, u64 ref, who, tail = reason
 *     TICK            (nothing: heartbeat)
 *     PEERS           tail = array of node names
 *     BYE             tail = reason (the sender is closing the link)
 *     PING            u64 token (answered at once with PONG and the same token)
 *     PONG            u64 token (the sender's clock: the round-trip time, stats.c)
 *     LEFT            u32 creation, name: that incarnation of a peer of the
 *                     sender left it on purpose (BYE "shutdown" or
 *                     "disconnect"): don't redial it (mesh.c)
 *
 * - pogo_wire_parse checks the kind, every fixed field against the length and
 *   that kinds without a tail have no extra bytes; it never reads past the
 *   payload. Tails are checked by the codec when decoded.
 * - Kinds 0x20.. are the handshake's (handshake.h); they are invalid here.
 * - Fuzzed by csrc/fuzz/fuzz_frame.c, which compiles this file alone: hence
 *   its own header beside the transport's internal one (dist.h).
 */
#ifndef POGO_WIRE_H
#define POGO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "dist/frame.h"

enum {
  POGO_W_SEND = 1,
  POGO_W_SEND_NAMED,
  POGO_W_LINK,
  POGO_W_UNLINK,
  POGO_W_EXIT,
  POGO_W_MONITOR,
  POGO_W_MONITOR_NAME,
  POGO_W_DEMONITOR,
  POGO_W_DEMONITOR_NAME,
  POGO_W_DOWN,
  POGO_W_TICK,
  POGO_W_PEERS,
  POGO_W_BYE,
  POGO_W_PING,
  POGO_W_PONG,
  POGO_W_LEFT,
  POGO_W_LAST_DATA = POGO_W_LEFT
};

#define POGO_WIRE_ID 16
#define POGO_WIRE_NAME_MAX 1024
#define POGO_WIRE_LINKED 1

typedef struct pogo_wire_id {
  uint32_t creation;
  uint64_t serial;
  uint32_t slot;
} pogo_wire_id;

typedef struct pogo_wire_msg {
  uint8_t kind;
  uint8_t flags;
  pogo_wire_id a, b; /* to | from,to | watcher,target | watcher,who */
  uint64_t ref;     /* also the token of PING and PONG */
  uint32_t creation; /* LEFT */
  const char *name;
  size_t name_len;
  const char *tail; /* codec-encoded values (may be empty) */
  size_t tail_len;
} pogo_wire_msg;

/* 0, or -1 with a static message in *err. */
int pogo_wire_parse(const char *p, size_t n, pogo_wire_msg *m, const char **err);

/* Append fixed fields to a buffer (room must have been reserved). */
static inline void pogo_wire_put_id(pogo_buf *b, const pogo_wire_id *id) {
  unsigned char *p = (unsigned char *)b->data + b->len;
  pogo_be_put32(p, id->creation);
  pogo_be_put64(p + 4, id->serial);
  pogo_be_put32(p + 12, id->slot);
  b->len += POGO_WIRE_ID;
}
static inline void pogo_wire_put_u8(pogo_buf *b, uint8_t v) { b->data[b->len++] = (char)v; }
static inline void pogo_wire_put_u32(pogo_buf *b, uint32_t v) {
  pogo_be_put32((unsigned char *)b->data + b->len, v);
  b->len += 4;
}
static inline void pogo_wire_put_u64(pogo_buf *b, uint64_t v) {
  pogo_be_put64((unsigned char *)b->data + b->len, v);
  b->len += 8;
}
/* name: the caller checks 1 <= len <= POGO_WIRE_NAME_MAX and reserved 2 + len. */
void pogo_wire_put_name(pogo_buf *b, const char *name, size_t len);

#endif
