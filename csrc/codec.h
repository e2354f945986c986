/*
 * codec.h: Lua values <-> msgpack bytes (msgpack-c).
 *
 * Contract
 * - Encodes nil, booleans, integers, floats, strings, tables (a table whose keys
 *   are exactly 1..n is an array, any other table a map) and extension values
 *   (pids, refs) through the caller's hooks.
 * - Canonical form (always produced): map keys sorted by their encoded bytes,
 *   integers in their smallest msgpack form, floats that hold an integral value
 *   within int64 range stay floats (float64). Equal tables give equal bytes.
 * - Functions, coroutines, userdata (other than extension values), cycles and
 *   nesting deeper than POGO_CODEC_MAX_DEPTH fail with a message naming the
 *   path, e.g. "msg.handler: function cannot be sent", "msg[2]: cycle cannot be sent".
 * - Decoding never trusts lengths: every length is checked against the bytes that
 *   remain, depth is capped, and malformed input is an error, never a crash.
 * - No function raises a Lua error; all report through their return value and
 *   `err` so that callers can free what they own first.
 */
#ifndef POGO_CODEC_H
#define POGO_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include <msgpack.h>

#define POGO_CODEC_MAX_DEPTH 64
#define POGO_CODEC_ERRLEN 256

/* msgpack extension type numbers used on the wire. */
#define POGO_EXT_PID 1
#define POGO_EXT_REF 2

/* Hooks for extension values (pids and refs), provided by the process runtime. */
typedef struct pogo_codec_ext {
  void *ud;
  /* If the value at idx is an extension value, pack it and return 1;
   * return 0 if it is not one (the codec then reports "userdata cannot be sent"). */
  int (*encode)(void *ud, lua_State *L, int idx, msgpack_packer *pk);
  /* Push the Lua value for extension `type` with payload data[0..len).
   * Return 0 on success, -1 if the payload is invalid (nothing pushed). */
  int (*decode)(void *ud, lua_State *L, int8_t type, const char *data, size_t len);
} pogo_codec_ext;

/* Append the canonical encoding of the value at idx to pk's buffer.
 * `root` names the value in error paths (e.g. "msg"). ext may be NULL.
 * Returns 0, or -1 with a message in err. Uses at most a few Lua stack slots. */
int pogo_codec_encode(lua_State *L, int idx, msgpack_packer *pk,
                      const pogo_codec_ext *ext, const char *root,
                      char err[POGO_CODEC_ERRLEN]);

/* Encode a message: like pogo_codec_encode, but maps keep their table order
 * (no sorting: a 4,000,000-entry map takes 0.3 s, not 5 s) and the encoding
 * stops, with "<root>: too large to be sent (more than <max> bytes)", as soon
 * as it passes max_bytes (0: no limit), before the rest is encoded. */
int pogo_codec_encode_msg(lua_State *L, int idx, msgpack_packer *pk,
                          const pogo_codec_ext *ext, const char *root,
                          size_t max_bytes, char err[POGO_CODEC_ERRLEN]);

/* The Lua heap (in Lua's own count: collectgarbage("count")) that decoding
 * data[0..len) would take, from one pass over its headers without building
 * anything: tables, their array and hash parts, strings, extension values.
 * SIZE_MAX when it is malformed (the decoder then says why). */
size_t pogo_codec_estimate(const char *data, size_t len);

/* Decode one value from data[0..len) and push it. *used receives the number of
 * bytes consumed. Returns 0, or -1 with a message in err (nothing pushed). */
int pogo_codec_decode(lua_State *L, const char *data, size_t len, size_t *used,
                      const pogo_codec_ext *ext, char err[POGO_CODEC_ERRLEN]);

/* 64-bit XXH3 hash (with seed) of the canonical encoding of the value at idx.
 * Strings and integers are hashed without any allocation; tables are encoded
 * into a stack buffer when small. Returns 0, or -1 with a message in err. */
int pogo_codec_hash(lua_State *L, int idx, uint64_t seed, uint64_t *out,
                    const pogo_codec_ext *ext, char err[POGO_CODEC_ERRLEN]);

/* Adds encode(v [, root [, max_bytes [, message]]]), decode(s), hash(v [, seed])
 * and estimate(s) to the table at top of stack (Lua-facing helpers for specs
 * and tools; they raise Lua errors).
 * ext (may be NULL) must stay valid as long as the Lua state; its owner is
 * anchored by the caller. */
void pogo_codec_register(lua_State *L, const pogo_codec_ext *ext);

#endif
