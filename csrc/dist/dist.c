/*
 * dist.c: the transport as a whole: its lifetime and its Lua face, the
 * core.dist_* functions (wrapped by lua/pogo/dist.lua).
 *
 * Contract
 * - core.dist_start (pogo.start) creates the transport (pogo_dist), starts the
 *   mesh (listener, seeds) and installs the node's ops table (remote.h) with
 *   the remote operations of outbound.c; from then on the runtime reaches
 *   other nodes through it. The table is removed when the transport closes: a
 *   restart after pogo.stop, or the node's own end (the runtime calls the
 *   close op), which frees everything the transport owns.
 * - More options, each read by the file that owns the concept: `advertise`
 *   ("host[:port]": the address in the node's name, when it differs from the
 *   listening host/port), `tls` (tls.c), `discovery` (discovery.c). A bad
 *   one raises at dist_start with a message naming it.
 * - core.dist_stop closes every connection, telling peers why; dist_drain
 *   waits (main chunk only) until they are closed. Other functions: connect,
 *   disconnect, block, nodes, monitor_nodes, info, inject (a test hook),
 *   random. Functions that need a started node raise "not started".
 * - SIGPIPE: a write to a peer that has just died may raise it, and its
 *   default action ends the OS process. dist_start ignores it (as Node and
 *   the Erlang VM do) when its disposition is still the default, so a host
 *   that installed its own handler keeps it; writes then fail with EPIPE,
 *   which closes that link only.
 * - pogo_dist_register(L) adds these functions to the core table; core.c
 *   calls it (the runtime never does).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

/* SIG_IGN for SIGPIPE, unless someone chose a disposition (see the contract). */
static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) != 0) return;
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) {
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
  }
}

static void op_close(void *ctx, lua_State *L);

/* The remote operations this transport gives the runtime. */
static const pogo_remote_ops ops = {
  .send = pogo_outbound_send,
  .send_named = pogo_outbound_send_named,
  .link = pogo_outbound_link,
  .unlink = pogo_outbound_unlink,
  .exit = pogo_outbound_exit,
  .monitor = pogo_outbound_monitor,
  .monitor_name = pogo_outbound_monitor_name,
  .demonitor = pogo_outbound_demonitor,
  .demonitor_name = pogo_outbound_demonitor_name,
  .down = pogo_outbound_down,
  .close = op_close,
};

/* The node's transport, if this one runs. */
static pogo_dist *dist_of(pogo_node *N) { return N->remote == &ops ? N->remote_ctx : NULL; }
pogo_dist *pogo_dist_of(pogo_node *N) { return dist_of(N); }

static void dist_free(pogo_dist *d, lua_State *L) {
  pogo_discovery_stop(d);
  pogo_mesh_free(d);
  pogo_log_close(d);
  pogo_tls_ctx_free(d->tls); /* connections still closing keep their reference */
  d->tls = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, d->ref_subs);
  free(d->name);
  if (d->cookie) {
    memset(d->cookie, 0, d->cookie_len);
    free(d->cookie);
  }
  free(d);
}

static void op_close(void *ctx, lua_State *L) {
  pogo_dist *d = ctx;
  if (dist_of(d->N) == d) pogo_remote_set(d->N, NULL, NULL);
  dist_free(d, L);
}

static void close_dist(pogo_node *N, lua_State *L) {
  pogo_dist *d = dist_of(N);
  if (d) op_close(d, L);
}

static int has_conns(void *arg) { return ((pogo_dist *)arg)->conns != NULL; }

/* ---- Lua API ---- */

static pogo_dist *started(lua_State *L, pogo_node *N, const char *what) {
  pogo_dist *d = dist_of(N);
  if (!d || d->stopping) luaL_error(L, "%s: the node is not started (pogo.start)", what);
  return d;
}

static lua_Integer opt_ms(lua_State *L, int t, const char *field, lua_Integer def, lua_Integer min) {
  lua_getfield(L, t, field);
  lua_Integer v = lua_isnil(L, -1) ? def : lua_tointeger(L, -1);
  if (!lua_isnil(L, -1) && !lua_isinteger(L, -1)) luaL_error(L, "pogo.start: %s must be an integer", field);
  lua_pop(L, 1);
  if (v < min || v > 0x7fffffff) luaL_error(L, "pogo.start: %s out of range", field);
  return v;
}

/* The advertised address (opts.advertise, "host" or "host:port"; default:
 * the listening host and port) into d->adv_host/adv_port: 0, or -1 with err. */
static int advertise(pogo_dist *d, lua_State *L, char *err, size_t errlen) {
  lua_getfield(L, 1, "advertise");
  size_t len = 0;
  const char *a = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  int bad = !lua_isnil(L, -1) && !a;
  snprintf(d->adv_host, sizeof d->adv_host, "%s", d->host);
  d->adv_port = d->port;
  if (a) {
    char host[POGO_HOST_MAX], tmp[POGO_HOST_MAX + 8];
    int port = 0;
    snprintf(tmp, sizeof tmp, "%s:1", a); /* a host alone */
    if (pogo_addr_split(a, len, host, &port) == 0 && port > 0) d->adv_port = port;
    else bad = len >= POGO_HOST_MAX || pogo_addr_split(tmp, strlen(tmp), host, NULL) != 0;
    if (!bad && strchr(host, ':') && a[0] != '[') bad = 1; /* IPv6 goes in brackets */
    if (!bad) snprintf(d->adv_host, sizeof d->adv_host, "%s", host);
  }
  if (bad) snprintf(err, errlen, "advertise must be \"host:port\" or \"host\", got '%s'", a ? a : "?");
  lua_pop(L, 1);
  return bad ? -1 : 0;
}

static int is_wildcard(const char *host) { return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0; }

/* dist_start{name=, host=, port=, cookie=, seeds=, heartbeat_ms=, timeout_ms=,
 *   max_frame=, backoff_min_ms=, backoff_max_ms=, forget_ms=, log=, block=,
 *   advertise=, tls=, discovery=}
 * -> full node name, port */
static int l_dist_start(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  pogo_dist *old = dist_of(N);
  if (old && !old->stopping) return luaL_error(L, "pogo.start: the node is already started as %s", old->name);
  if (old) close_dist(N, L);
  ignore_sigpipe();
  lua_getfield(L, 1, "name");
  size_t nl;
  const char *base = luaL_checklstring(L, -1, &nl);
  for (size_t i = 0; i < nl; i++)
    if (base[i] <= 0x20 || base[i] >= 0x7f || base[i] == '@' || base[i] == ':')
      return luaL_error(L, "pogo.start: invalid node name '%s'", base);
  if (nl == 0 || nl > 100) return luaL_error(L, "pogo.start: node names are 1 to 100 characters");
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  lua_getfield(L, 1, "cookie");
  size_t cl;
  const char *cookie = luaL_checklstring(L, -1, &cl);
  if (cl == 0) return luaL_error(L, "pogo.start: empty cookie");
  lua_Integer port = opt_ms(L, 1, "port", 0, 0);
  if (port > 65535) return luaL_error(L, "pogo.start: port out of range");
  if (strlen(host) >= POGO_HOST_MAX) return luaL_error(L, "pogo.start: host name too long");
  uint32_t heartbeat = (uint32_t)opt_ms(L, 1, "heartbeat_ms", 1000, 10);
  uint32_t timeout = (uint32_t)opt_ms(L, 1, "timeout_ms", 5000, 20);
  uint32_t max_frame = (uint32_t)opt_ms(L, 1, "max_frame", POGO_DEFAULT_MAX_FRAME, POGO_HS_MAX_FRAME);
  uint32_t bmin = (uint32_t)opt_ms(L, 1, "backoff_min_ms", 50, 1);
  uint32_t bmax = (uint32_t)opt_ms(L, 1, "backoff_max_ms", 2000, 1);
  uint32_t forget = (uint32_t)opt_ms(L, 1, "forget_ms", 300000, 0);
  lua_getfield(L, 1, "log");
  int log = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);

  pogo_dist *d = calloc(1, sizeof *d);
  if (!d) return luaL_error(L, "pogo.start: out of memory");
  d->N = N;
  d->ref_subs = LUA_NOREF;
  snprintf(d->host, sizeof d->host, "%s", host);
  d->port = (int)port;
  d->heartbeat_ms = heartbeat;
  d->timeout_ms = timeout;
  d->max_frame = max_frame;
  d->backoff_min = bmin;
  d->backoff_max = bmax < bmin ? bmin : bmax;
  d->forget_ms = forget;
  d->log = log;
  d->cookie = malloc(cl);
  if (!d->cookie) {
    free(d);
    return luaL_error(L, "pogo.start: out of memory");
  }
  memcpy(d->cookie, cookie, cl);
  d->cookie_len = cl;
  pogo_log_open(d);
  lua_newtable(L);
  d->ref_subs = luaL_ref(L, LUA_REGISTRYINDEX);
  pogo_remote_set(N, &ops, d);

  char err[512];
  if (pogo_mesh_start(d, L, err, sizeof err) != 0 || advertise(d, L, err, sizeof err) != 0) {
    close_dist(N, L);
    return luaL_error(L, "pogo.start: %s", err);
  }
  if (strchr(d->adv_host, ':')) lua_pushfstring(L, "%s@[%s]:%d", base, d->adv_host, d->adv_port);
  else lua_pushfstring(L, "%s@%s:%d", base, d->adv_host, d->adv_port);
  d->name = strdup(lua_tostring(L, -1));
  d->name_len = strlen(d->name);
  int name_idx = lua_gettop(L);
  if (!d->name || d->name_len > POGO_NAME_MAX) {
    close_dist(N, L);
    return luaL_error(L, "pogo.start: the node name is too long");
  }
  if (pogo_tls_configure(d, L, 1, err, sizeof err) != 0) {
    close_dist(N, L);
    return luaL_error(L, "pogo.start: %s", err);
  }
  if (is_wildcard(d->adv_host))
    pogo_log_at(d, POGO_LOG_WARNING, NULL,
                "listening on %s without advertise: peers cannot reach this node by its name", d->adv_host);

  lua_getfield(L, 1, "block");
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
      size_t bl;
      const char *b = lua_tolstring(L, -1, &bl);
      uint32_t idx = pogo_nodenames_index(N, L, b, bl);
      if (idx) pogo_mesh_block(d, L, idx, 1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "seeds");
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
      const char *s = lua_tostring(L, -1);
      if (!s || pogo_mesh_add_seed(d, s, err, sizeof err) != 0) {
        if (!s) snprintf(err, sizeof err, "seeds must be strings");
        close_dist(N, L);
        return luaL_error(L, "pogo.start: %s", err);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (pogo_discovery_start(d, L, 1, err, sizeof err) != 0) {
    close_dist(N, L);
    return luaL_error(L, "pogo.start: %s", err);
  }
  lua_pushvalue(L, name_idx);
  lua_pushinteger(L, d->port);
  pogo_host_wake(N); /* host code started sockets and timers: a hosted node steps (host.c) */
  return 2;
}

/* dist_stop([reason]): close every connection, telling peers why (default "shutdown") */
static int l_dist_stop(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  const char *reason = luaL_optstring(L, 1, "shutdown");
  pogo_dist *d = dist_of(N);
  if (d) {
    pogo_discovery_stop(d);
    pogo_mesh_stop(d, L, reason);
  }
  pogo_host_wake(N);
  return 0;
}

/* dist_drain(timeout_ms) -> true when every connection closed cleanly. Only from
 * the main chunk (elsewhere it returns at once): drives the loop until the
 * connections of a stopped node are closed, then closes whatever is left. */
static int l_dist_drain(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Integer ms = luaL_optinteger(L, 1, 1000);
  pogo_dist *d = dist_of(N);
  if (!d || !d->stopping) {
    lua_pushboolean(L, d == NULL);
    return 1;
  }
  if (pogo_sched_block_mode(N, L) != POGO_BLOCK_DRIVE) { /* the loop will finish the job */
    lua_pushboolean(L, d->conns == NULL);
    return 1;
  }
  pogo_sched_drive_while(N, has_conns, d, ms > 0 ? ms : 0);
  int clean = d->conns == NULL;
  while (d->conns) pogo_conn_close(d->conns);
  pogo_mesh_finish_stop(d);
  lua_pushboolean(L, clean);
  return 1;
}

/* dist_connect(addr, pid, ref) -> node (already connected) | nil (pending:
 * pid gets {ref, true, node} or {ref, false, reason}); raises on a bad address */
static int l_dist_connect(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = started(L, N, "pogo.connect");
  const char *addr = luaL_checkstring(L, 1);
  if (!pogo_ident_is_pid(L, 2, NULL)) return luaL_argerror(L, 2, "pid expected");
  char err[256];
  int r = pogo_mesh_connect(d, L, addr, 2, 3, err, sizeof err);
  if (r < 0) return luaL_error(L, "pogo.connect: %s", err);
  if (r == 0) lua_pushnil(L);
  return 1;
}

static uint32_t check_node(lua_State *L, pogo_node *N, int idx) {
  size_t len;
  const char *name = luaL_checklstring(L, idx, &len);
  return pogo_nodenames_index(N, L, name, len);
}

/* dist_disconnect(node) -> whether it was connected */
static int l_dist_disconnect(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = started(L, N, "pogo.disconnect");
  uint32_t idx = check_node(L, N, 1);
  lua_pushboolean(L, idx && pogo_mesh_disconnect(d, L, idx, "disconnect"));
  pogo_host_wake(N);
  return 1;
}

/* dist_block(node, flag) */
static int l_dist_block(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = started(L, N, "pogo.block");
  uint32_t idx = check_node(L, N, 1);
  if (idx) pogo_mesh_block(d, L, idx, lua_toboolean(L, 2));
  pogo_host_wake(N);
  return 0;
}

/* dist_nodes() -> names of connected nodes */
static int l_dist_nodes(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = dist_of(N);
  lua_newtable(L);
  if (!d || d->stopping) return 1;
  lua_Integer n = 0;
  for (uint32_t i = 1; i < d->npeers; i++) {
    if (!d->peers[i] || !d->peers[i]->up) continue;
    lua_pushstring(L, pogo_nodenames_get(N, L, i));
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* dist_monitor_nodes(pid, flag) */
static int l_dist_monitor_nodes(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = started(L, N, "pogo.monitor_nodes");
  if (!pogo_ident_is_pid(L, 1, NULL)) return luaL_argerror(L, 1, "pid expected");
  pogo_mesh_subscribe(d, L, 1, lua_toboolean(L, 2));
  return 0;
}

static const char *state_name(int s) {
  switch (s) {
  case CS_CONNECTING: return "connecting";
  case CS_HANDSHAKE: return "handshake";
  case CS_UP: return "up";
  case CS_CLOSING: return "closing";
  default: return "dead";
  }
}

/* dist_info() -> {name=, port=, listen=, tls=, started=, peers = {[node] = {dialer=,
 *   creation=, backlog=, wanted=, blocked=, seed=, left=}}, links = {{state=, peer=,
 *   outgoing=, tls=}, ...}, targets = {{addr=, seed=, found=, name=, error=}, ...}, own = {"host:port", ...},
 *   discovery = {name=, rounds=, status=, error=, addrs = {"host:port", ...}}}
 *   (own: addresses from DNS that a dial found to reach this node itself;
 *   a target's error: why its last dial failed; discovery: discovery.c) */
static int l_dist_info(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = dist_of(N);
  lua_newtable(L);
  if (!d) return 1;
  lua_pushstring(L, d->name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, d->port);
  lua_setfield(L, -2, "port");
  if (strchr(d->host, ':')) lua_pushfstring(L, "[%s]:%d", d->host, d->port);
  else lua_pushfstring(L, "%s:%d", d->host, d->port);
  lua_setfield(L, -2, "listen");
  lua_pushboolean(L, d->tls != NULL);
  lua_setfield(L, -2, "tls");
  lua_pushboolean(L, !d->stopping);
  lua_setfield(L, -2, "started");
  lua_newtable(L);
  for (uint32_t i = 1; i < d->npeers; i++) {
    pogo_peer *p = d->peers[i];
    if (!p) continue;
    lua_newtable(L);
    lua_pushboolean(L, p->up != NULL);
    lua_setfield(L, -2, "up");
    if (p->up) {
      lua_pushstring(L, p->dialer ? p->dialer : "?");
      lua_setfield(L, -2, "dialer");
      lua_pushinteger(L, p->creation);
      lua_setfield(L, -2, "creation");
      lua_pushinteger(L, (lua_Integer)pogo_conn_backlog(p->up));
      lua_setfield(L, -2, "backlog");
    }
    lua_pushboolean(L, p->wanted);
    lua_setfield(L, -2, "wanted");
    lua_pushboolean(L, p->blocked);
    lua_setfield(L, -2, "blocked");
    lua_pushboolean(L, p->seed);
    lua_setfield(L, -2, "seed");
    lua_pushboolean(L, p->left);
    lua_setfield(L, -2, "left");
    lua_setfield(L, -2, pogo_nodenames_get(N, L, i));
  }
  lua_setfield(L, -2, "peers");
  lua_newtable(L);
  lua_Integer n = 0;
  for (pogo_conn *c = d->conns; c; c = c->next) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, state_name(c->state));
    lua_setfield(L, -2, "state");
    lua_pushboolean(L, c->outgoing);
    lua_setfield(L, -2, "outgoing");
    lua_pushstring(L, c->peer_name ? c->peer_name : c->addr);
    lua_setfield(L, -2, "peer");
    lua_pushboolean(L, c->tls != NULL);
    lua_setfield(L, -2, "tls");
    lua_rawseti(L, -2, ++n);
  }
  lua_setfield(L, -2, "links");
  pogo_mesh_push_targets(d, L);
  lua_setfield(L, -2, "targets");
  pogo_mesh_push_own(d, L);
  lua_setfield(L, -2, "own");
  pogo_discovery_push_info(d, L);
  lua_setfield(L, -2, "discovery");
  return 1;
}

/* dist_inject(node, bytes) -> true: append raw bytes to the connection to node
 * (a test hook for malformed frames on an authenticated connection) */
static int l_dist_inject(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  uint32_t idx = check_node(L, N, 1);
  size_t n;
  const char *bytes = luaL_checklstring(L, 2, &n);
  pogo_dist *d = dist_of(N);
  pogo_conn *c = d ? pogo_outbound_conn(d, idx) : NULL;
  if (!c) return 0;
  if (pogo_buf_append(&c->out, bytes, n) != 0) return luaL_error(L, "out of memory");
  pogo_conn_dirty(c);
  lua_pushboolean(L, 1);
  return 1;
}

/* dist_random(n) -> n cryptographically random bytes */
static int l_dist_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1 || n > 1024) return luaL_argerror(L, 1, "1..1024 expected");
  unsigned char buf[1024];
  if (pogo_hs_random(buf, (size_t)n) != 0) return luaL_error(L, "no random bytes available");
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}

void pogo_dist_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"dist_start", l_dist_start}, {"dist_stop", l_dist_stop}, {"dist_drain", l_dist_drain},
    {"dist_connect", l_dist_connect}, {"dist_disconnect", l_dist_disconnect}, {"dist_block", l_dist_block},
    {"dist_nodes", l_dist_nodes}, {"dist_monitor_nodes", l_dist_monitor_nodes}, {"dist_info", l_dist_info},
    {"dist_inject", l_dist_inject}, {"dist_random", l_dist_random}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
  pogo_stats_register(L);
}
