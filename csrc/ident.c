/*
 * ident.c: pids and refs as interned Lua userdata, and their codec extension
 * hooks (how they cross to other nodes).
 *
 * Contract
 * - A pid or ref is a userdata holding a pogo_id. Equal ids are the same Lua
 *   value (interned through a weak-valued cache), so `==` and table keys work.
 *   This node's pids and refs are interned by serial in chunked caches
 *   (chunks.c: one is made at every spawn, one at every call), the others
 *   by key in a plain one.
 * - tostring(pid) is "<node.N>", tostring(ref) is "#Ref<node.N>".
 * - An id names its node by its index in the node-name table (nodenames.c);
 *   index 0 is this node. A pid of an earlier incarnation of this node (other
 *   creation) never matches a live local process.
 * - On the wire (codec extension types POGO_EXT_PID / POGO_EXT_REF) an id is
 *   u16 name length, name, u32 creation, u64 serial and, for pids, u32 slot,
 *   all big-endian. Decoding checks every length.
 */
#include <string.h>

#include "runtime.h"
#include "be.h"

#define PID_MT "pogo.pid"
#define REF_MT "pogo.ref"

/* The metatables are also in the registry under these addresses (constant,
 * only their addresses are used): a light-userdata key is found without
 * hashing a string, where luaL_testudata looks the name up on every check. */
static const char PID_KEY = 'p';
static const char REF_KEY = 'r';

/* The pogo_id at idx if it is a pid (want POGO_KIND_PID), a ref
 * (POGO_KIND_REF) or either (0); NULL otherwise. */
static pogo_id *test_ident(lua_State *L, int idx, uint32_t want) {
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != sizeof(pogo_id)) return NULL;
  if (!lua_getmetatable(L, idx)) return NULL;
  int hit = 0;
  if (want != POGO_KIND_REF) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &PID_KEY);
    hit = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
  }
  if (!hit && want != POGO_KIND_PID) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &REF_KEY);
    hit = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return hit ? lua_touserdata(L, idx) : NULL;
}

static void push_key(lua_State *L, const pogo_id *id) {
  char k[17];
  k[0] = (char)id->kind;
  memcpy(k + 1, &id->node, 4);
  memcpy(k + 5, &id->creation, 4);
  memcpy(k + 9, &id->serial, 8);
  lua_pushlstring(L, k, sizeof k);
}

/* Make the userdata of id, a pid or ref of this node, and put it in its
 * cache c (at index t). */
static void new_local_id(lua_State *L, const pogo_id *id, pogo_chunks *c, int t) {
  pogo_id *u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = *id;
  lua_rawgetp(L, LUA_REGISTRYINDEX, id->kind == POGO_KIND_PID ? &PID_KEY : &REF_KEY);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  pogo_chunks_set(L, c, t, id->serial);
}

/* A pid or ref of this node: interned in a chunked cache (chunks.c), by serial. */
static void push_local_id(pogo_node *N, lua_State *L, const pogo_id *id) {
  pogo_chunks *c = id->kind == POGO_KIND_PID ? &N->pidcache : &N->refcache;
  pogo_chunks_push(L, c);
  int t = lua_gettop(L);
  pogo_chunks_get(L, t, id->serial);
  if (lua_type(L, -1) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    new_local_id(L, id, c, t);
  }
  lua_remove(L, t);
}

void pogo_ident_push_new_pid(pogo_node *N, lua_State *L, const pogo_id *id) {
  pogo_chunks_push(L, &N->pidcache);
  int t = lua_gettop(L);
  new_local_id(L, id, &N->pidcache, t);
  lua_remove(L, t);
}

void pogo_ident_push(pogo_node *N, lua_State *L, const pogo_id *id) {
  if (id->node == 0 && id->creation == N->creation) {
    push_local_id(N, L, id);
    return;
  }
  pogo_node_push_ref(L, N->ref_idents);
  push_key(L, id);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, -3) == LUA_TUSERDATA) {
    lua_replace(L, -3);
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  pogo_id *u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = *id;
  lua_rawgetp(L, LUA_REGISTRYINDEX, id->kind == POGO_KIND_PID ? &PID_KEY : &REF_KEY);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_insert(L, -4); /* result below cache */
  lua_rawset(L, -3); /* cache[key] = ud */
  lua_pop(L, 1);
}

int pogo_ident_get(lua_State *L, int idx, pogo_id *out) {
  pogo_id *u = test_ident(L, idx, 0);
  if (!u) return 0;
  if (out) *out = *u;
  return 1;
}

int pogo_ident_is_pid(lua_State *L, int idx, pogo_id *out) {
  pogo_id *u = test_ident(L, idx, POGO_KIND_PID);
  if (!u) return 0;
  if (out) *out = *u;
  return 1;
}

static int ident_tostring(lua_State *L) {
  pogo_id *u = lua_touserdata(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "pogo.node.ptr");
  pogo_node *N = lua_touserdata(L, -1);
  const char *name = N ? pogo_nodenames_get(N, L, u->node) : "?";
  if (u->kind == POGO_KIND_PID)
    lua_pushfstring(L, "<%s.%I>", name, (lua_Integer)u->serial);
  else
    lua_pushfstring(L, "#Ref<%s.%I>", name, (lua_Integer)u->serial);
  return 1;
}

/* ---- codec extension hooks ---- */

static int ext_encode(void *ud, lua_State *L, int idx, msgpack_packer *pk) {
  pogo_node *N = ud;
  pogo_id id;
  if (!pogo_ident_get(L, idx, &id)) return 0;
  const char *name = pogo_nodenames_get(N, L, id.node);
  size_t nl = strlen(name);
  if (nl > 65535) nl = 65535;
  unsigned char buf[2 + 65535 + 20];
  pogo_be_put16(buf, (uint16_t)nl);
  memcpy(buf + 2, name, nl);
  size_t o = 2 + nl;
  pogo_be_put32(buf + o, id.creation); o += 4;
  pogo_be_put64(buf + o, id.serial); o += 8;
  if (id.kind == POGO_KIND_PID) { pogo_be_put32(buf + o, id.slot); o += 4; }
  msgpack_pack_ext(pk, o, id.kind == POGO_KIND_PID ? POGO_EXT_PID : POGO_EXT_REF);
  msgpack_pack_ext_body(pk, buf, o);
  return 1;
}

static int ext_decode(void *ud, lua_State *L, int8_t type, const char *data, size_t len) {
  pogo_node *N = ud;
  const unsigned char *p = (const unsigned char *)data;
  if (type != POGO_EXT_PID && type != POGO_EXT_REF) return -1;
  if (len < 2) return -1;
  size_t nl = pogo_be_get16(p);
  size_t need = 2 + nl + 12 + (type == POGO_EXT_PID ? 4 : 0);
  if (len != need || nl == 0) return -1;
  pogo_id id;
  memset(&id, 0, sizeof id);
  id.kind = type == POGO_EXT_PID ? POGO_KIND_PID : POGO_KIND_REF;
  const unsigned char *q = p + 2 + nl;
  id.creation = pogo_be_get32(q);
  id.serial = pogo_be_get64(q + 4);
  if (type == POGO_EXT_PID) id.slot = pogo_be_get32(q + 12);
  if (!lua_checkstack(L, 6)) return -1;
  id.node = pogo_nodenames_index(N, L, (const char *)p + 2, nl);
  pogo_ident_push(N, L, &id);
  return 0;
}

void pogo_ident_setup(pogo_node *N, lua_State *L) {
  if (luaL_newmetatable(L, PID_MT)) {
    lua_pushcfunction(L, ident_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &PID_KEY);
  if (luaL_newmetatable(L, REF_MT)) {
    lua_pushcfunction(L, ident_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &REF_KEY);
  lua_pushlightuserdata(L, N);
  lua_setfield(L, LUA_REGISTRYINDEX, "pogo.node.ptr");
  N->ext.ud = N;
  N->ext.encode = ext_encode;
  N->ext.decode = ext_decode;
}

/* ---- Lua API ---- */

static int l_is_pid(lua_State *L) {
  lua_pushboolean(L, pogo_ident_is_pid(L, 1, NULL));
  return 1;
}

static int l_is_ref(lua_State *L) {
  lua_pushboolean(L, test_ident(L, 1, POGO_KIND_REF) != NULL);
  return 1;
}

/* node_of(pid_or_ref) -> node name */
static int l_node_of(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id id;
  if (!pogo_ident_get(L, 1, &id)) return luaL_argerror(L, 1, "pid or ref expected");
  lua_pushstring(L, pogo_nodenames_get(N, L, id.node));
  return 1;
}

/* make_ref() -> a new unique ref */
static int l_make_ref(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id id = {.serial = N->next_ref++, .node = 0, .creation = N->creation, .kind = POGO_KIND_REF};
  pogo_ident_push(N, L, &id);
  return 1;
}

/* creation() -> this node's incarnation number */
static int l_creation(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_pushinteger(L, N->creation);
  return 1;
}

void pogo_ident_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"creation", l_creation}, {"is_pid", l_is_pid}, {"is_ref", l_is_ref},
    {"node_of", l_node_of}, {"make_ref", l_make_ref}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
