/*
 * fuzz_frame.c: libFuzzer target for what a peer can send: the frame reader
 * (csrc/dist/frame.c), data payloads (dist/wire.c), handshake messages
 * (dist/handshake.c, with node names checked by dist/addr.c) and the values
 * inside frames (codec.c).
 *
 * The input after its first byte is a byte stream from a socket. The first
 * byte picks the frame size limit and how the stream is cut into reads. Every
 * frame the reader hands out must be within the limit and, re-framed by the
 * writer, read back identical; each payload goes through every parser (none
 * may read out of bounds), and the codec tail of a data frame is decoded
 * value by value with the same test hooks for pids and refs as fuzz_codec.
 *
 * Build and run: bash csrc/fuzz/run.sh [seconds]
 */
// fuzz-sources: dist/frame.c dist/wire.c dist/handshake.c dist/addr.c codec.c
// fuzz-libs: -lcrypto
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "dist/frame.h"
#include "dist/handshake.h"
#include "dist/wire.h"

#define EXT_MT "fuzz_frame.ext"

static int ext_encode(void *ud, lua_State *L, int idx, msgpack_packer *pk) {
  (void)ud;
  (void)L;
  (void)idx;
  (void)pk;
  return 0;
}

static int ext_decode(void *ud, lua_State *L, int8_t type, const char *data, size_t len) {
  (void)ud;
  if (type != POGO_EXT_PID && type != POGO_EXT_REF) return -1;
  char *b = lua_newuserdatauv(L, len ? len : 1, 0);
  if (len) memcpy(b, data, len);
  luaL_setmetatable(L, EXT_MT);
  return 0;
}

static const pogo_codec_ext test_ext = {NULL, ext_encode, ext_decode};
static lua_State *L;

static void close_state(void) {
  if (L) lua_close(L);
  L = NULL;
}

static void die(const char *what) {
  fprintf(stderr, "fuzz_frame: %s\n", what);
  abort();
}

static void check_payload(const char *p, uint32_t n) {
  const char *err = NULL;
  pogo_wire_msg m;
  if (pogo_wire_parse(p, n, &m, &err) == 0) {
    if (m.tail < p || m.tail + m.tail_len != p + n) die("tail outside the payload");
    if (m.name && (m.name < p || m.name + m.name_len > p + n)) die("name outside the payload");
    /* decode the tail value by value, as dist.c and the peers list do */
    int top = lua_gettop(L);
    size_t off = 0;
    char cerr[POGO_CODEC_ERRLEN];
    while (off < m.tail_len) {
      size_t used = 0;
      if (pogo_codec_decode(L, m.tail + off, m.tail_len - off, &used, &test_ext, cerr) != 0) {
        if (lua_gettop(L) != top) die("stack changed after a failed decode");
        break;
      }
      if (used == 0 || used > m.tail_len - off) die("bad used count");
      off += used;
      lua_settop(L, top);
    }
    lua_settop(L, top);
  } else if (!err) {
    die("parse failed without a reason");
  }
  pogo_hs_hello h;
  unsigned char nonce[POGO_HS_NONCE], dg[POGO_HS_DIGEST];
  char reason[POGO_HS_REASON_MAX + 1];
  if (pogo_hs_parse_hello(p, n, POGO_HS_HELLO, &h, &err) == 0) {
    char host[POGO_HOST_MAX];
    int port;
    if (!pogo_addr_of_node(h.name, h.name_len, host, &port)) die("accepted an invalid name");
    if (port < 0 || port > 65535 || strlen(host) == 0) die("bad address from a valid name");
  }
  pogo_hs_parse_hello(p, n, POGO_HS_CHALLENGE, &h, &err);
  pogo_hs_parse_response(p, n, nonce, dg, &err);
  pogo_hs_parse_ack(p, n, dg, &err);
  if (pogo_hs_parse_refuse(p, n, reason, &err) == 0 && strlen(reason) > POGO_HS_REASON_MAX) die("long reason");
  char host[POGO_HOST_MAX];
  int port;
  pogo_addr_of_node(p, n, host, &port);
  pogo_addr_split(p, n, host, &port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    L = luaL_newstate();
    if (!L) abort();
    luaL_newmetatable(L, EXT_MT);
    lua_pop(L, 1);
    atexit(close_state);
  }
  if (size < 1) return 0;
  uint8_t cfg = data[0];
  data++;
  size--;
  static const uint32_t limits[] = {POGO_HS_MAX_FRAME, 64, 1 << 20, 64u * 1024 * 1024};
  uint32_t max = limits[cfg & 3];
  size_t chunk = (cfg >> 2) == 0 ? size + 1 : (size_t)(cfg >> 2); /* bytes per read */

  pogo_frame_reader r;
  pogo_frame_reader_init(&r, max);
  pogo_buf again = {0};
  size_t fed = 0, framed = 0;
  int failed = 0;
  while (fed < size && !failed) {
    size_t avail = 0;
    char *room = pogo_frame_reader_space(&r, &avail);
    size_t want = (size_t)max + POGO_FRAME_HDR < POGO_FRAME_CHUNK ? (size_t)max + POGO_FRAME_HDR : POGO_FRAME_CHUNK;
    if (!room || avail < want) die("no room to read into");
    size_t n = size - fed < chunk ? size - fed : chunk;
    if (n > avail) n = avail;
    memcpy(room, data + fed, n);
    pogo_frame_reader_commit(&r, n);
    fed += n;
    for (;;) {
      const char *p;
      uint32_t len;
      int k = pogo_frame_next(&r, &p, &len);
      if (k == 0) break;
      if (k < 0) {
        if (!r.error) die("error without a reason");
        failed = 1;
        break;
      }
      if (len == 0 || len > max) die("frame outside the limit");
      framed += POGO_FRAME_HDR + len;
      if (framed > fed) die("handed out more bytes than were read");
      /* the writer frames it back to the same bytes */
      size_t start = pogo_frame_begin(&again, len);
      if (start == (size_t)-1) die("out of memory");
      memcpy(again.data + again.len, p, len);
      again.len += len;
      if (pogo_frame_end(&again, start, max) != (long)len) die("writer refused a valid payload");
      if (memcmp(again.data + start, data + framed - POGO_FRAME_HDR - len, POGO_FRAME_HDR + len) != 0)
        die("re-framed bytes differ");
      again.len = 0;
      check_payload(p, len);
    }
  }
  if (!failed && framed + pogo_frame_pending(&r) != fed) die("bytes lost");
  pogo_frame_reader_free(&r);
  pogo_buf_free(&again);
  return 0;
}
