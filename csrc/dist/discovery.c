/*
 * discovery.c: seeds read from DNS, as libcluster's DNSPoll and
 * Kubernetes.DNS strategies do: c-ares driven by the node's libuv loop.
 *
 * Contract
 * - opts.discovery = {dns = "name:port", interval_ms = 5000, nameserver =
 *   "ip:port"}: every A and AAAA record of `name` is a seed at `port`, read
 *   again every interval_ms (the first round at once). A name of the form
 *   "_service._proto.name" reads SRV records instead: each gives a host and
 *   a port, and every address of that host is a seed (the port after the
 *   name is then optional and ignored). `nameserver` replaces the system's
 *   resolvers (/etc/resolv.conf), for tests and private DNS.
 * - A round hands what it found to the mesh (pogo_mesh_found, then
 *   pogo_mesh_found_sweep): new addresses are dialed at once, addresses gone
 *   since the last round stop being dialed unless their node is connected,
 *   and a connected one is not redialed once lost (mesh.c).
 *   A round that fails (no answer, a server error) adds what it found but
 *   forgets nothing; its failure is logged once until a round succeeds. A
 *   name that does not exist, or has no records, is a successful empty round
 *   (logged once, until addresses are found).
 *   This node's own address (advertised, or listened on) is skipped, and
 *   so is an address a dial found to reach this node itself (mesh.c).
 * - What the last complete round found is kept for tools (dist_info's
 *   `discovery`: the name, how many rounds completed, the round's status,
 *   "ok", "not found" (no such name), "no records" or "failed" (no answer,
 *   a server error), with c-ares's reason, and every address it listed,
 *   this node's own included): a name that did not resolve, a name without
 *   addresses and addresses where no node answers (their targets' `error`,
 *   mesh.c) are told apart (bin/pogo status --discover says which).
 * - Never a blocking call: c-ares opens its sockets and tells us which to
 *   watch (sock_state_cb); each is a uv_poll, and c-ares's timeouts run on a
 *   uv_timer (ares_timeout). A round still running when the next is due
 *   delays it.
 * - pogo_discovery_stop (pogo.stop, or the transport's end) destroys the
 *   channel (pending queries end with ARES_EDESTRUCTION and change nothing)
 *   and closes the handles; the state is freed by the last close callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <arpa/nameser.h>

#include "dist/dist.h"

#define DEFAULT_INTERVAL_MS 5000
#define QUERY_TIMEOUT_MS 2000
#define QUERY_TRIES 2

typedef struct disc_poll {
  uv_poll_t h;
  ares_socket_t fd;
  pogo_discovery *x;
  struct disc_poll *next;
} disc_poll;

typedef struct disc_addr {
  char host[64];
  int port;
} disc_addr;

struct pogo_discovery {
  pogo_dist *d; /* NULL once stopped */
  uv_loop_t *loop;
  ares_channel ch;
  uv_timer_t round_t; /* every interval_ms */
  uv_timer_t ares_t;  /* c-ares's next timeout */
  disc_poll *polls;
  int open; /* handles not yet closed */
  char name[POGO_HOST_MAX];
  int port, srv;
  uint32_t interval_ms, gen;
  int pending; /* queries of this round not answered yet */
  int failed;  /* an ares status other than "no such name/records" */
  uint8_t logged;
  uint8_t empty_logged; /* an empty round was logged since addresses were last found */
  disc_addr *addrs; /* found this round */
  size_t naddrs, cap;
  int missing; /* this round: a name that does not exist (ENOTFOUND) or has no records (ENODATA) */
  /* the last complete round, for tools (dist_info): its addresses (addrs and
   * last swap at its end), how it went, and how many rounds completed */
  disc_addr *last;
  size_t nlast, last_cap;
  int last_status; /* ARES_SUCCESS, a failure, or ENOTFOUND/ENODATA */
  uint32_t rounds;
};

typedef struct disc_query {
  pogo_discovery *x;
  int port;
} disc_query;

static void handle_closed(uv_handle_t *h) {
  pogo_discovery *x = h->data;
  if (h->type == UV_POLL) {
    disc_poll *p = (disc_poll *)h;
    x = p->x;
    free(p);
  }
  if (--x->open == 0) {
    free(x->addrs);
    free(x->last);
    free(x);
  }
}

/* ---- c-ares on the loop ---- */

static void ares_timer_cb(uv_timer_t *h);

static void arm_timeout(pogo_discovery *x) {
  if (!x->ch) return;
  struct timeval tv, *tvp = ares_timeout(x->ch, NULL, &tv);
  if (!tvp) {
    uv_timer_stop(&x->ares_t);
    return;
  }
  uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + ((uint64_t)tvp->tv_usec + 999) / 1000;
  uv_timer_start(&x->ares_t, ares_timer_cb, ms, 0);
}

static void ares_timer_cb(uv_timer_t *h) {
  pogo_discovery *x = h->data;
  if (!x->ch) return;
  ares_process_fd(x->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  arm_timeout(x);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  disc_poll *p = (disc_poll *)h;
  pogo_discovery *x = p->x;
  if (!x->ch) return;
  ares_socket_t r = ARES_SOCKET_BAD, w = ARES_SOCKET_BAD;
  if (status < 0 || (events & UV_READABLE)) r = p->fd; /* an error: c-ares reads it */
  if (status < 0 || (events & UV_WRITABLE)) w = p->fd;
  ares_process_fd(x->ch, r, w);
  arm_timeout(x);
}

static void poll_close(pogo_discovery *x, disc_poll *p) {
  for (disc_poll **pp = &x->polls; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  uv_close((uv_handle_t *)&p->h, handle_closed);
}

/* c-ares opens, watches or closes one of its sockets. */
static void sock_cb(void *data, ares_socket_t fd, int readable, int writable) {
  pogo_discovery *x = data;
  disc_poll *p = x->polls;
  while (p && p->fd != fd) p = p->next;
  if (!readable && !writable) {
    if (p) poll_close(x, p); /* stops watching now, before c-ares closes fd */
    return;
  }
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p) return;
    if (uv_poll_init_socket(x->loop, &p->h, fd) != 0) {
      free(p);
      return;
    }
    p->h.data = x;
    p->fd = fd;
    p->x = x;
    p->next = x->polls;
    x->polls = p;
    x->open++;
  }
  uv_poll_start(&p->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), poll_cb);
}

/* ---- a round ---- */

static int is_missing(int status) { return status == ARES_ENOTFOUND || status == ARES_ENODATA; }

static void add_addr(pogo_discovery *x, const struct sockaddr *sa, int port) {
  char ip[64];
  if (sa->sa_family == AF_INET) uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
  else if (sa->sa_family == AF_INET6) uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof ip);
  else return;
  for (size_t i = 0; i < x->naddrs; i++)
    if (x->addrs[i].port == port && strcmp(x->addrs[i].host, ip) == 0) return;
  if (x->naddrs == x->cap) {
    size_t ncap = x->cap ? 2 * x->cap : 8;
    disc_addr *na = realloc(x->addrs, ncap * sizeof *na);
    if (!na) {
      x->failed = ARES_ENOMEM;
      return;
    }
    x->addrs = na;
    x->cap = ncap;
  }
  snprintf(x->addrs[x->naddrs].host, sizeof x->addrs[x->naddrs].host, "%s", ip);
  x->addrs[x->naddrs++].port = port;
}

/* Is host:port this node? Its advertised address, the one it listens on, or
 * (listening on every interface) one of this host's addresses at its port. */
static int is_self(pogo_dist *d, const char *host, int port, uv_interface_address_t *ifs, int nifs) {
  if (port == d->adv_port && strcmp(host, d->adv_host) == 0) return 1;
  if (port != d->port) return 0;
  if (strcmp(host, d->host) == 0) return 1;
  for (int i = 0; i < nifs; i++) {
    char ip[64];
    if (ifs[i].address.address4.sin_family == AF_INET) uv_ip4_name(&ifs[i].address.address4, ip, sizeof ip);
    else uv_ip6_name(&ifs[i].address.address6, ip, sizeof ip);
    if (strcmp(ip, host) == 0) return 1;
  }
  return 0;
}

/* (under pogo_guard: it runs inside c-ares's callbacks, and what it finds
 * may end connect waits, which delivers messages) */
static int round_done_fn(lua_State *L, void *arg) {
  pogo_discovery *x = arg;
  pogo_dist *d = x->d;
  if (x->failed) {
    if (!x->logged)
      pogo_log_at(d, POGO_LOG_WARNING, NULL, "discovery: cannot read %s from DNS: %s (trying again every %u ms)",
                  x->name, ares_strerror(x->failed), x->interval_ms);
    x->logged = 1;
  } else if (x->logged) {
    pogo_log_at(d, POGO_LOG_INFO, NULL, "discovery: %s read from DNS again", x->name);
    x->logged = 0;
  }
  if (!x->failed && x->naddrs == 0 && !x->empty_logged) {
    /* (a typo in the name, or a cluster whose records are not there yet) */
    pogo_log_at(d, POGO_LOG_INFO, NULL, "discovery: %s has no %s records in DNS (yet): looking again every %u ms",
                x->name, x->srv ? "SRV" : "A or AAAA", x->interval_ms);
    x->empty_logged = 1;
  } else if (x->naddrs > 0) {
    x->empty_logged = 0;
  }
  uv_interface_address_t *ifs = NULL;
  int nifs = 0;
  if (strcmp(d->host, "0.0.0.0") == 0 || strcmp(d->host, "::") == 0) uv_interface_addresses(&ifs, &nifs);
  for (size_t i = 0; i < x->naddrs; i++) {
    const disc_addr *a = &x->addrs[i];
    if (is_self(d, a->host, a->port, ifs, nifs)) continue;
    if (pogo_mesh_found(d, a->host, a->port, x->gen) == 1)
      pogo_log_at(d, POGO_LOG_INFO, NULL, "discovery: %s%s%s:%d found in DNS (%s)", strchr(a->host, ':') ? "[" : "",
                  a->host, strchr(a->host, ':') ? "]" : "", a->port, x->name);
  }
  if (ifs) uv_free_interface_addresses(ifs, nifs);
  /* what tools see of this round (dist_info): swap, so the next round fills the other array */
  disc_addr *a = x->last;
  size_t cap = x->last_cap;
  x->last = x->addrs, x->nlast = x->naddrs, x->last_cap = x->cap;
  x->addrs = a, x->naddrs = 0, x->cap = cap;
  x->last_status = x->failed ? x->failed : x->nlast == 0 && x->missing ? x->missing : ARES_SUCCESS;
  x->rounds++;
  if (!x->failed) pogo_mesh_found_sweep(d, L, x->gen);
  return 0;
}

static void round_done(pogo_discovery *x) {
  pogo_dist *d = x->d;
  if (!d || d->stopping) return;
  pogo_guard(d->N, round_done_fn, x, "DNS discovery", NULL, 0);
}

static void settle(pogo_discovery *x) {
  if (--x->pending == 0) round_done(x);
}

static void addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res) {
  (void)timeouts;
  disc_query *q = arg;
  pogo_discovery *x = q->x;
  if (status == ARES_SUCCESS && res && x->d) {
    for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next) add_addr(x, n->ai_addr, q->port);
  } else if (is_missing(status)) {
    if (!x->missing) x->missing = status;
  } else if (status != ARES_SUCCESS && status != ARES_EDESTRUCTION) {
    x->failed = status;
  }
  if (res) ares_freeaddrinfo(res);
  free(q);
  settle(x);
}

/* Look the addresses of host up (a query of the round). */
static void lookup(pogo_discovery *x, const char *host, int port) {
  disc_query *q = malloc(sizeof *q);
  if (!q) {
    x->failed = ARES_ENOMEM;
    return;
  }
  q->x = x;
  q->port = port;
  struct ares_addrinfo_hints hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  x->pending++;
  ares_getaddrinfo(x->ch, host, NULL, &hints, addr_cb, q);
}

static void srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
  (void)timeouts;
  pogo_discovery *x = arg;
  if (status == ARES_SUCCESS && x->d) {
    struct ares_srv_reply *srv = NULL;
    int r = ares_parse_srv_reply(abuf, alen, &srv);
    if (r == ARES_SUCCESS)
      for (struct ares_srv_reply *s = srv; s; s = s->next) lookup(x, s->host, s->port);
    else if (is_missing(r) && !x->missing)
      x->missing = r;
    else if (!is_missing(r))
      x->failed = r;
    if (srv) ares_free_data(srv);
  } else if (is_missing(status)) {
    if (!x->missing) x->missing = status;
  } else if (status != ARES_SUCCESS && status != ARES_EDESTRUCTION) {
    x->failed = status;
  }
  settle(x);
}

static void round_cb(uv_timer_t *h) {
  pogo_discovery *x = h->data;
  if (!x->d || !x->ch || x->pending) return; /* the last round is still running */
  if (++x->gen == 0) x->gen = 1;
  x->naddrs = 0;
  x->failed = ARES_SUCCESS;
  x->missing = ARES_SUCCESS;
  x->pending = 1; /* this function's, until every query is issued */
  if (x->srv) {
    x->pending++;
    ares_search(x->ch, x->name, ns_c_in, ns_t_srv, srv_cb, x);
  } else {
    lookup(x, x->name, x->port);
  }
  settle(x);
  arm_timeout(x);
}

/* ---- lifetime ---- */

static int parse_dns(pogo_discovery *x, const char *dns, char *err, size_t errlen) {
  size_t len = strlen(dns);
  int srv = dns[0] == '_';
  char host[POGO_HOST_MAX];
  int port = 0;
  if (pogo_addr_split(dns, len, host, &port) == 0 && port > 0 && !strchr(host, ':')) {
    snprintf(x->name, sizeof x->name, "%s", host);
    x->port = port;
  } else if (srv && len < sizeof x->name && !strchr(dns, ':')) {
    snprintf(x->name, sizeof x->name, "%s", dns);
  } else {
    snprintf(err, errlen, "discovery.dns must be \"name:port\" or \"_service._tcp.name\", got '%s'", dns);
    return -1;
  }
  for (const char *c = x->name; *c; c++) {
    if (*c <= 0x20 || *c >= 0x7f) {
      snprintf(err, errlen, "discovery.dns: '%s' is not a DNS name", dns);
      return -1;
    }
  }
  x->srv = srv;
  return 0;
}

static int opt_field(lua_State *L, int t, const char *k, int type) {
  lua_getfield(L, t, k);
  int ok = lua_isnil(L, -1) || lua_type(L, -1) == type;
  if (type == LUA_TNUMBER && ok && !lua_isnil(L, -1)) ok = lua_isinteger(L, -1);
  return ok;
}

int pogo_discovery_start(pogo_dist *d, lua_State *L, int opts_idx, char *err, size_t errlen) {
  opts_idx = lua_absindex(L, opts_idx);
  int top = lua_gettop(L);
  lua_getfield(L, opts_idx, "discovery");
  int t = lua_gettop(L);
  if (lua_isnil(L, t)) {
    lua_settop(L, top);
    return 0;
  }
  const char *dns = NULL, *ns = NULL;
  lua_Integer interval = DEFAULT_INTERVAL_MS;
  if (lua_istable(L, t)) {
    lua_getfield(L, t, "dns");
    dns = lua_type(L, -1) == LUA_TSTRING && *lua_tostring(L, -1) ? lua_tostring(L, -1) : NULL;
  }
  if (!dns) {
    snprintf(err, errlen, "discovery must be a table {dns = \"name:port\", interval_ms =, nameserver =}");
    lua_settop(L, top);
    return -1;
  }
  if (!opt_field(L, t, "interval_ms", LUA_TNUMBER)) {
    snprintf(err, errlen, "discovery.interval_ms must be an integer");
    lua_settop(L, top);
    return -1;
  }
  if (!lua_isnil(L, -1)) interval = lua_tointeger(L, -1);
  if (!opt_field(L, t, "nameserver", LUA_TSTRING)) {
    snprintf(err, errlen, "discovery.nameserver must be \"ip:port\"");
    lua_settop(L, top);
    return -1;
  }
  ns = lua_tostring(L, -1); /* NULL when absent; kept on the stack until settop */
  if (interval < 10 || interval > 0x7fffffff) {
    snprintf(err, errlen, "discovery.interval_ms out of range (10 or more)");
    lua_settop(L, top);
    return -1;
  }
  pogo_discovery *x = calloc(1, sizeof *x);
  if (!x) {
    snprintf(err, errlen, "out of memory");
    lua_settop(L, top);
    return -1;
  }
  x->interval_ms = (uint32_t)interval;
  if (parse_dns(x, dns, err, errlen) != 0) {
    free(x);
    lua_settop(L, top);
    return -1;
  }
  struct ares_options o;
  memset(&o, 0, sizeof o);
  o.sock_state_cb = sock_cb;
  o.sock_state_cb_data = x;
  o.timeout = QUERY_TIMEOUT_MS;
  o.tries = QUERY_TRIES;
  int r = ares_init_options(&x->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (r == ARES_SUCCESS && ns && ares_set_servers_ports_csv(x->ch, ns) != ARES_SUCCESS) {
    snprintf(err, errlen, "discovery.nameserver must be \"ip:port\", got '%s'", ns);
    ares_destroy(x->ch);
    free(x);
    lua_settop(L, top);
    return -1;
  }
  lua_settop(L, top);
  if (r != ARES_SUCCESS) {
    snprintf(err, errlen, "discovery: cannot start the DNS resolver: %s", ares_strerror(r));
    free(x);
    return -1;
  }
  x->d = d;
  x->loop = d->N->loop;
  uv_timer_init(x->loop, &x->round_t);
  uv_timer_init(x->loop, &x->ares_t);
  x->round_t.data = x->ares_t.data = x;
  x->open = 2;
  d->disc = x;
  uv_timer_start(&x->round_t, round_cb, 0, x->interval_ms);
  return 0;
}

void pogo_discovery_push_info(pogo_dist *d, lua_State *L) {
  pogo_discovery *x = d->disc;
  if (!x) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 5);
  lua_pushstring(L, x->name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, x->rounds);
  lua_setfield(L, -2, "rounds");
  if (x->rounds) {
    int st = x->last_status;
    lua_pushstring(L, st == ARES_SUCCESS ? "ok" : st == ARES_ENOTFOUND ? "not found" : st == ARES_ENODATA ? "no records"
                                                                                                       : "failed");
    lua_setfield(L, -2, "status");
    if (st != ARES_SUCCESS) {
      lua_pushstring(L, ares_strerror(st));
      lua_setfield(L, -2, "error");
    }
  }
  lua_createtable(L, (int)x->nlast, 0);
  for (size_t i = 0; i < x->nlast; i++) {
    const disc_addr *a = &x->last[i];
    if (strchr(a->host, ':')) lua_pushfstring(L, "[%s]:%d", a->host, a->port);
    else lua_pushfstring(L, "%s:%d", a->host, a->port);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "addrs");
}

void pogo_discovery_stop(pogo_dist *d) {
  pogo_discovery *x = d->disc;
  if (!x) return;
  d->disc = NULL;
  x->d = NULL;
  ares_channel ch = x->ch;
  ares_destroy(ch); /* pending queries end (EDESTRUCTION); sockets are unwatched */
  x->ch = NULL;
  while (x->polls) poll_close(x, x->polls);
  uv_close((uv_handle_t *)&x->round_t, handle_closed);
  uv_close((uv_handle_t *)&x->ares_t, handle_closed);
}
