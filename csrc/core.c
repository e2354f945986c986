/*
 * core.c: luaopen_pogo_core, the entry point of the C core and its
 * composition root.
 *
 * Contract: returns one table holding every C-level function of pogo. Each
 * part registers its own functions: the runtime (node.c), the transport
 * (csrc/dist/, which installs itself on the node when pogo.start runs), pg,
 * the codec, the ring and the HTTP server. This is the only file outside csrc/dist/ that
 * includes a transport header. Nothing here is global: all state hangs off
 * the Lua state that loaded the module.
 */
#include <lua.h>
#include <lauxlib.h>

#include "codec.h"
#include "ring.h"
#include "node.h"
#include "dist/dist.h"
#include "runtime.h"
#include "pg.h"
#include "http.h"

#define POGO_EXPORT __attribute__((visibility("default")))

POGO_EXPORT int luaopen_pogo_core(lua_State *L) {
  lua_newtable(L);
  pogo_node *N = pogo_node_open(L); /* node userdata on the stack */
  pogo_node_register(L);            /* table at -2, node at -1 */
  pogo_dist_register(L);            /* the transport: core.dist_* */
  pogo_pg_register(L);
  pogo_http_register(L);             /* core.http_listen: the web page's server */
  lua_pop(L, 1);
  pogo_codec_register(L, &N->ext);
  pogo_ring_register(L, &N->ext);
  return 1;
}
