/*
 * frame.h: byte buffers and length-prefixed frames (pure: no I/O, no Lua).
 *
 * Contract
 * - A frame on the wire is a 4-byte big-endian payload length L followed by L
 *   payload bytes, with 1 <= L <= max (the reader's limit). An empty frame or a
 *   length above the limit is an error; the reader then stays failed.
 * - pogo_buf is a growable byte buffer. Frames are written into it with
 *   pogo_frame_begin / pogo_frame_end (the length is patched in at the end, so
 *   payloads can be encoded straight into the buffer without a copy).
 * - pogo_frame_reader accumulates bytes read from a stream (ask it for room
 *   with _space, report what was read with _commit) and hands out complete
 *   payloads in order with _next. A payload pointer stays valid until the next
 *   call to _space. It never holds much more than max + 4 bytes plus a read
 *   chunk (a few KiB while the limit is small, as during a handshake), and
 *   gives memory back after a large frame.
 * - Fuzzed by csrc/fuzz/fuzz_frame.c, which compiles this file alone: hence
 *   its own header beside the transport's internal one (dist.h).
 */
#ifndef POGO_FRAME_H
#define POGO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "be.h"

#define POGO_FRAME_HDR 4
#define POGO_FRAME_CHUNK (64 * 1024) /* room offered for each read */

typedef struct pogo_buf {
  char *data;
  size_t len, cap;
} pogo_buf;

int pogo_buf_reserve(pogo_buf *b, size_t extra); /* 0, or -1 out of memory */
int pogo_buf_append(pogo_buf *b, const void *p, size_t n);
void pogo_buf_free(pogo_buf *b);
/* Release the memory of an empty buffer bigger than `keep` bytes. */
void pogo_buf_trim(pogo_buf *b, size_t keep);
/* msgpack_packer write callback appending to the pogo_buf passed as data. */
int pogo_buf_write_cb(void *data, const char *buf, size_t len);

/* Start a frame at the end of b: reserves the length prefix and `hint` more
 * bytes. Returns the frame's offset, or (size_t)-1 when out of memory. */
size_t pogo_frame_begin(pogo_buf *b, size_t hint);
/* Finish the frame started at `start`: patch its length. Returns the payload
 * length, or -1 (and removes the frame) if it is empty or longer than max. */
long pogo_frame_end(pogo_buf *b, size_t start, uint32_t max);

typedef struct pogo_frame_reader {
  char *buf;
  size_t cap, start, end; /* unread bytes are buf[start..end) */
  uint32_t max;           /* largest payload accepted */
  const char *error;      /* set once the stream is invalid */
} pogo_frame_reader;

void pogo_frame_reader_init(pogo_frame_reader *r, uint32_t max);
void pogo_frame_reader_free(pogo_frame_reader *r);
/* Room to read into: at least POGO_FRAME_CHUNK bytes (or max + 4 if smaller),
 * more if the frame being received needs it. NULL when out of memory. */
char *pogo_frame_reader_space(pogo_frame_reader *r, size_t *avail);
void pogo_frame_reader_commit(pogo_frame_reader *r, size_t n);
/* 1: a payload is in (*payload, *len); 0: more bytes needed; -1: the stream is
 * invalid (r->error says why; it stays invalid). */
int pogo_frame_next(pogo_frame_reader *r, const char **payload, uint32_t *len);
/* Bytes received but not yet handed out. */
static inline size_t pogo_frame_pending(const pogo_frame_reader *r) { return r->end - r->start; }

#endif
