/*
 * fuzz_codec.c: libFuzzer target for the codec (csrc/codec.c).
 *
 * Decodes arbitrary bytes. When that succeeds, the value is re-encoded and
 * must (1) encode without error, (2) decode again consuming every byte,
 * (3) re-encode to the very same bytes (canonical form is a fixed point), and
 * (4) hash (pogo_codec_hash) to XXH3_64bits_withSeed of the encoded bytes.
 * Extension values (types 1 and 2, pids and refs on the wire) go through test
 * hooks that keep the payload in a userdata, so the ext paths are fuzzed too.
 *
 * Build and run: bash csrc/fuzz/run.sh [seconds]
 */
// fuzz-sources: codec.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <msgpack.h>
#include <xxhash.h>

#include "codec.h"

#define EXT_MT "fuzz_codec.ext"

typedef struct {
  int8_t type;
  size_t len;
  char data[];
} ext_box;

static int ext_encode(void *ud, lua_State *L, int idx, msgpack_packer *pk) {
  (void)ud;
  ext_box *b = luaL_testudata(L, idx, EXT_MT);
  if (!b) return 0;
  if (msgpack_pack_ext(pk, b->len, b->type) || msgpack_pack_ext_body(pk, b->data, b->len)) return 0;
  return 1;
}

static int ext_decode(void *ud, lua_State *L, int8_t type, const char *data, size_t len) {
  (void)ud;
  if (type != POGO_EXT_PID && type != POGO_EXT_REF) return -1;
  ext_box *b = lua_newuserdatauv(L, sizeof *b + len, 0);
  b->type = type;
  b->len = len;
  if (len) memcpy(b->data, data, len);
  luaL_setmetatable(L, EXT_MT);
  return 0;
}

static const pogo_codec_ext test_ext = {NULL, ext_encode, ext_decode};

/* A fresh Lua state per input, so that every allocation of an input is freed
 * before it ends and libFuzzer's per-input leak check stays meaningful (and
 * fast: Lua garbage outliving an input would make it scan for leaks). */
static lua_State *L;
static int checked_headers;

static void die(const char *what, const char *err) {
  fprintf(stderr, "fuzz_codec: %s: %s\n", what, err ? err : "");
  abort();
}

/* pogo_codec_encode of the value on top must equal what pack() makes with
 * msgpack-c's own packer (only the first `prefix` bytes when prefix > 0). */
static void same_as_msgpack(const char *what, size_t prefix, void (*pack)(msgpack_packer *, int64_t),
                            int64_t arg) {
  char err[POGO_CODEC_ERRLEN];
  msgpack_sbuffer a, b;
  msgpack_packer pa, pb;
  msgpack_sbuffer_init(&a);
  msgpack_sbuffer_init(&b);
  msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
  msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
  if (pogo_codec_encode(L, -1, &pa, NULL, "x", err) != 0) die(what, err);
  pack(&pb, arg);
  size_t n = prefix ? prefix : b.size;
  if (a.size < n || b.size < n || (!prefix && a.size != b.size) || memcmp(a.data, b.data, n) != 0)
    die(what, "differs from msgpack-c");
  msgpack_sbuffer_destroy(&a);
  msgpack_sbuffer_destroy(&b);
  lua_pop(L, 1);
}

static void pk_int(msgpack_packer *pk, int64_t v) { msgpack_pack_int64(pk, v); }
static void pk_double(msgpack_packer *pk, int64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  msgpack_pack_double(pk, d);
}
static void pk_array(msgpack_packer *pk, int64_t n) { msgpack_pack_array(pk, (size_t)n); }
static void pk_map(msgpack_packer *pk, int64_t n) { msgpack_pack_map(pk, (size_t)n); }
static void pk_str(msgpack_packer *pk, int64_t n) { msgpack_pack_str(pk, (size_t)n); }

/* Headers of every size class agree with msgpack-c (checked once). */
static void check_headers(void) {
  static const int64_t sizes[] = {0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    int64_t n = sizes[i];
    size_t hlen = n < 16 ? 1 : n < 65536 ? 3 : 5;
    lua_createtable(L, (int)n, 0);
    for (int64_t k = 1; k <= n; k++) {
      lua_pushboolean(L, 1);
      lua_rawseti(L, -2, k);
    }
    same_as_msgpack("array header", hlen, pk_array, n);
    if (n > 0) {
      lua_createtable(L, 0, (int)n);
      for (int64_t k = 1; k <= n; k++) {
        lua_pushboolean(L, 1);
        lua_rawseti(L, -2, -k);
      }
      same_as_msgpack("map header", hlen, pk_map, n);
    }
    char *buf = calloc(1, (size_t)n + 1);
    lua_pushlstring(L, buf, (size_t)n);
    free(buf);
    same_as_msgpack("str header", n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5, pk_str, n);
  }
}

static int one_input(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  L = luaL_newstate();
  if (!L) abort();
  luaL_newmetatable(L, EXT_MT);
  lua_pop(L, 1);
  if (!checked_headers) {
    checked_headers = 1;
    check_headers();
  }
  int r = one_input(data, size);
  lua_close(L);
  L = NULL;
  return r;
}

static int one_input(const uint8_t *data, size_t size) {
  char err[POGO_CODEC_ERRLEN];
  int top = lua_gettop(L);

  /* integers and floats from the input bytes encode exactly like msgpack-c */
  if (size >= 8) {
    int64_t v;
    memcpy(&v, data + size - 8, sizeof v);
    int64_t w = v >> (data[0] & 63); /* all magnitudes */
    lua_pushinteger(L, (lua_Integer)w);
    same_as_msgpack("integer", 0, pk_int, w);
    if (w != INT64_MIN) {
      lua_pushinteger(L, (lua_Integer)-w);
      same_as_msgpack("integer", 0, pk_int, -w);
    }
    double d;
    memcpy(&d, &v, sizeof d);
    lua_pushnumber(L, d);
    same_as_msgpack("float", 0, pk_double, v);
  }
  size_t used = 0;
  /* mostly with the hooks; sometimes without (ext values must then fail) */
  const pogo_codec_ext *ext = size % 8 == 7 ? NULL : &test_ext;

  if (pogo_codec_decode(L, (const char *)data, size, &used, ext, err) != 0) {
    if (lua_gettop(L) != top) die("stack changed after a failed decode", err);
    if (strncmp(err, "malformed message: ", 19) != 0) die("odd decode error", err);
    return 0;
  }
  if (lua_gettop(L) != top + 1) die("decode pushed != 1 value", NULL);
  if (used == 0 || used > size) die("bad used count", NULL);

  msgpack_sbuffer b1, b2;
  msgpack_packer p1, p2;
  msgpack_sbuffer_init(&b1);
  msgpack_sbuffer_init(&b2);
  msgpack_packer_init(&p1, &b1, msgpack_sbuffer_write);
  msgpack_packer_init(&p2, &b2, msgpack_sbuffer_write);

  if (pogo_codec_encode(L, -1, &p1, &test_ext, "fuzz", err) != 0) die("re-encode failed", err);
  if (lua_gettop(L) != top + 1) die("encode changed the stack", NULL);

  uint64_t seed = size >= 9 ? ((uint64_t)data[size - 1] << 8 | data[size - 2]) : 0;
  uint64_t h = 0;
  if (pogo_codec_hash(L, -1, seed, &h, &test_ext, err) != 0) die("hash failed", err);
  if (h != XXH3_64bits_withSeed(b1.data, b1.size, seed)) die("hash != XXH3(encoding)", NULL);

  size_t used2 = 0;
  if (pogo_codec_decode(L, b1.data, b1.size, &used2, &test_ext, err) != 0)
    die("canonical encoding does not decode", err);
  if (used2 != b1.size) die("canonical decode left bytes", NULL);
  if (pogo_codec_encode(L, -1, &p2, &test_ext, "fuzz", err) != 0) die("second encode failed", err);
  if (b1.size != b2.size || memcmp(b1.data, b2.data, b1.size) != 0)
    die("canonical re-encode is not a fixed point", NULL);
  uint64_t h2 = 0;
  if (pogo_codec_hash(L, -1, seed, &h2, &test_ext, err) != 0 || h2 != h) die("hash unstable", err);

  /* the price of a decode is known for whatever decodes; as a message (map
   * keys unsorted) the value has the canonical size, decodes to the same
   * canonical bytes, and a limit below that size fails with "too large" */
  if (pogo_codec_estimate((const char *)data, used) == SIZE_MAX) die("estimate of a decodable value failed", NULL);
  if (pogo_codec_estimate(b1.data, b1.size) == SIZE_MAX) die("estimate of an encoding failed", NULL);
  msgpack_sbuffer b3;
  msgpack_packer p3;
  msgpack_sbuffer_init(&b3);
  msgpack_packer_init(&p3, &b3, msgpack_sbuffer_write);
  if (pogo_codec_encode_msg(L, -1, &p3, &test_ext, "fuzz", 0, err) != 0) die("message encode failed", err);
  if (b3.size != b1.size) die("message and canonical sizes differ", NULL);
  size_t used3 = 0;
  msgpack_sbuffer_clear(&b2);
  if (pogo_codec_decode(L, b3.data, b3.size, &used3, &test_ext, err) != 0 || used3 != b3.size)
    die("message encoding does not decode", err);
  if (pogo_codec_encode(L, -1, &p2, &test_ext, "fuzz", err) != 0) die("third encode failed", err);
  if (b2.size != b1.size || memcmp(b1.data, b2.data, b1.size) != 0) die("message decodes to another value", NULL);
  lua_pop(L, 1);
  if (b1.size > 1) {
    size_t max = 1 + (size_t)data[0] % (b1.size - 1); /* below the size */
    msgpack_sbuffer_clear(&b3);
    if (pogo_codec_encode_msg(L, -1, &p3, &test_ext, "fuzz", max, err) == 0) die("encoded past max_bytes", NULL);
    if (!strstr(err, "too large to be sent")) die("odd error past max_bytes", err);
    msgpack_sbuffer_clear(&b3);
    if (pogo_codec_encode_msg(L, -1, &p3, &test_ext, "fuzz", b1.size, err) != 0) die("max_bytes = size fails", err);
  }
  msgpack_sbuffer_destroy(&b3);

  /* an encoding of the first decoded value truncated anywhere must fail cleanly */
  if (b1.size > 1) {
    size_t cut = (size_t)data[0] % b1.size;
    if (pogo_codec_decode(L, b1.data, cut, &used2, &test_ext, err) == 0) die("truncated decoded", NULL);
  }

  msgpack_sbuffer_destroy(&b1);
  msgpack_sbuffer_destroy(&b2);
  lua_settop(L, top);
  return 0;
}
