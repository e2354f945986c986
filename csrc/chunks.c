/*
 * chunks.c: tables of the runtime's Lua values split into chunks, so that the
 * collector does not go through all of a big table after each write.
 *
 * Why
 * - Lua 5.4's generational collector (the mode lua.c runs in) traverses
 *   again, at every minor collection, each old table that a young value was
 *   written into since the last one (the write barrier marks it "touched"):
 *   the whole table. The runtime's per-process tables (slot -> coroutine,
 *   pid) and its pid cache (serial -> pid) get such a write at every spawn,
 *   its ref cache (serial -> ref) at every call. With 300,000 processes alive, each minor collection went through
 *   hundreds of thousands of entries of each, and a spawn cost three times
 *   what it costs with 1,000 alive (measured: README, bench/local.lua).
 * - Here a table is a top-level table of chunks of CHUNK entries (array
 *   parts): a write touches one chunk, and the top level only when a chunk
 *   is made, so a minor collection traverses the chunks written since the
 *   last one.
 *
 * Contract
 * - Keys are integers >= 0: process slots (bounded by the most processes
 *   alive at once: slot chunks are never freed), or serials, which only grow.
 * - A weak table (weak values: the pid and ref caches) keeps the indexes of
 *   its chunks in C; whenever it needs a chunk it looks at two older ones, in
 *   turn: the first its collector has emptied becomes the new chunk, a second
 *   is dropped, so the chunks stay within about twice those that hold a live
 *   value. The newest chunk is never taken.
 * - pogo_chunks_set pops the value; storing nil never makes a chunk. Making
 *   a chunk allocates and may raise (as a table write may).
 */
#include <stdlib.h>

#include "runtime.h"

#define CHUNK_SHIFT 8
#define CHUNK (1u << CHUNK_SHIFT)
#define WEAK_MT_KEY 0 /* top[0]: the metatable of a weak table's chunks */

void pogo_chunks_init(lua_State *L, pogo_chunks *c, int weak) {
  c->idx = NULL;
  c->n = c->cap = c->cursor = 0;
  c->newest = 0;
  c->weak = weak;
  lua_newtable(L);
  if (weak) {
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_rawseti(L, -2, WEAK_MT_KEY);
  }
  c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void pogo_chunks_free(lua_State *L, pogo_chunks *c) {
  luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
  c->ref = LUA_NOREF;
  free(c->idx);
  c->idx = NULL;
  c->n = c->cap = c->cursor = 0;
}

void pogo_chunks_push(lua_State *L, const pogo_chunks *c) { lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref); }

void pogo_chunks_get(lua_State *L, int t, uint64_t key) {
  if (lua_rawgeti(L, t, (lua_Integer)(key >> CHUNK_SHIFT) + 1) != LUA_TTABLE) return; /* nil on top */
  lua_rawgeti(L, -1, (lua_Integer)(key & (CHUNK - 1)) + 1);
  lua_remove(L, -2);
}

/* A weak table needs a new chunk: look at up to two older chunks, in turn,
 * for ones its collector has emptied. The first one found is taken off its
 * index and left on the stack (return 1) to serve as the new chunk: its
 * array part is still allocated, so a node that makes refs at every call
 * allocates no chunks in a steady state (a 4 KiB allocation every 256 calls
 * made glibc consolidate its fast bins each time). A second one is dropped. */
static int weak_take_empty(lua_State *L, pogo_chunks *c, int t) {
  int taken = 0;
  for (int k = 0; k < 2 && c->n > 1; k++) {
    if (c->cursor >= c->n) c->cursor = 0;
    uint64_t old = c->idx[c->cursor];
    if (old == c->newest) {
      c->cursor++;
      continue;
    }
    int empty = 1;
    if (lua_rawgeti(L, t, (lua_Integer)old) == LUA_TTABLE) {
      lua_pushnil(L);
      if (lua_next(L, -2)) {
        lua_pop(L, 2);
        empty = 0;
      }
    } else {
      empty = -1; /* no table (cannot happen): nothing to take */
    }
    if (empty) {
      if (empty > 0 && !taken) {
        taken = 1; /* the chunk stays on the stack */
      } else {
        lua_pop(L, 1);
      }
      lua_pushnil(L);
      lua_rawseti(L, t, (lua_Integer)old);
      c->idx[c->cursor] = c->idx[--c->n];
    } else {
      lua_pop(L, 1);
      c->cursor++;
    }
  }
  return taken;
}

/* A weak table made (or took again) chunk `ci`: remember it. */
static void weak_made(pogo_chunks *c, uint64_t ci) {
  if (c->n == c->cap) {
    uint32_t ncap = c->cap ? c->cap * 2 : 64;
    uint64_t *ni = realloc(c->idx, ncap * sizeof *ni);
    if (!ni) return; /* not looked at again: it stays until the node goes */
    c->idx = ni;
    c->cap = ncap;
  }
  c->idx[c->n++] = ci;
  c->newest = ci;
}

void pogo_chunks_set(lua_State *L, pogo_chunks *c, int t, uint64_t key) {
  t = lua_absindex(L, t);
  lua_Integer ci = (lua_Integer)(key >> CHUNK_SHIFT) + 1;
  if (lua_rawgeti(L, t, ci) != LUA_TTABLE) {
    lua_pop(L, 1);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      return;
    }
    if (!c->weak || !weak_take_empty(L, c, t)) {
      lua_createtable(L, (int)CHUNK, 0);
      if (c->weak) {
        lua_rawgeti(L, t, WEAK_MT_KEY);
        lua_setmetatable(L, -2);
      }
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, t, ci);
    if (c->weak) weak_made(c, (uint64_t)ci);
  }
  lua_insert(L, -2);
  lua_rawseti(L, -2, (lua_Integer)(key & (CHUNK - 1)) + 1);
  lua_pop(L, 1);
}
