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
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

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

/* Opens /dev/null on each of the descriptors 0, 1 and 2 that is closed
 * (`bin/pogo ... 2>&-`, a daemon's careless start): else the next one
 * opened, libuv's epoll descriptor say, became standard error, and the first
 * log line written there made libuv abort. Before luv's loop exists when
 * pogo is loaded first (bin/pogo). */
static void standard_fds(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    int nfd = open("/dev/null", O_RDWR);
    if (nfd >= 0 && nfd != fd) { /* (defensive: the lowest free one is fd itself) */
      dup2(nfd, fd);
      close(nfd);
    }
  }
}

POGO_EXPORT int luaopen_pogo_core(lua_State *L) {
  standard_fds();
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
