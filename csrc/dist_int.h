/*
 * dist_int.h: the transport's internal state, shared by link.c (one TCP
 * connection), mesh.c (peers, dialing, handshake, heartbeats, gossip) and
 * dist.c (remote process operations and the Lua API).
 *
 * Ownership
 * - pogo_dist hangs off pogo_node (N->dist) from pogo.start until the node
 *   stops or is collected. Its libuv handles live in a separate block
 *   (pogo_dist_uv) freed by their close callbacks; each link is its own
 *   allocation freed by its handle's close callback. Closing detaches them
 *   (d = NULL) first, so no callback ever reaches freed state.
 * - Peers are indexed by node index (the runtime's node-name table), so a
 *   remote pid's node field leads straight to its link.
 */
#ifndef POGO_DIST_INT_H
#define POGO_DIST_INT_H

#include <stdarg.h>

#include "runtime.h"
#include "frame.h"
#include "wire.h"
#include "handshake.h"

/* Link states. */
enum {
  LS_CONNECTING = 1, /* outgoing TCP connect in progress */
  LS_HANDSHAKE,      /* exchanging HELLO .. ACK */
  LS_UP,             /* authenticated; carries data frames */
  LS_CLOSING,        /* BYE or REFUSE sent, write side shut, waiting for EOF */
  LS_DEAD            /* uv_close called; freed by the close callback */
};

#define POGO_FLUSH_AT (64 * 1024)       /* flush a link's batch early above this */
#define POGO_BUSY_HIGH (4 * 1024 * 1024) /* a sender is suspended above this backlog */
#define POGO_BUSY_LOW (1024 * 1024)     /* ... and resumed below this one */

typedef struct pogo_dist pogo_dist;
typedef struct pogo_link pogo_link;
typedef struct pogo_target pogo_target;

/* A host name being resolved for a dial; outlives its link if need be. */
typedef struct pogo_gai {
  uv_getaddrinfo_t req;
  pogo_link *l; /* NULL once the link is gone */
} pogo_gai;

typedef struct pogo_link {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  pogo_dist *d;             /* NULL once dead */
  pogo_link *next, *prev;   /* all links of d */
  pogo_link *dnext;         /* dirty list */
  int state;
  uint8_t outgoing, writing, dirty, hs_step, sent, shut;
  pogo_frame_reader in;
  pogo_buf out, wbuf;       /* batch being filled, batch being written */
  size_t woff;              /* written part of wbuf */
  msgpack_packer pk;        /* appends to out */
  uint64_t t_state, last_recv;
  const char *fail;         /* deferred failure (static string) */
  char addr[POGO_HOST_MAX + 8]; /* "host:port" for logs (dialed or peer's) */
  /* handshake */
  unsigned char nonce_a[POGO_HS_NONCE], nonce_d[POGO_HS_NONCE];
  char *peer_name;
  size_t peer_name_len;
  uint32_t peer_creation, peer_max_frame;
  uint32_t peer;            /* node index once the name is known (0 = not yet) */
  pogo_target *target;      /* dialed for a seed or a connect request */
  pogo_gai *gai;            /* host name lookup in progress */
  uint32_t dial_peer;       /* dialed by name for this node index */
  /* senders suspended on this link's backlog */
  pogo_rq_entry *busy;
  uint32_t nbusy, busy_cap;
} pogo_link;

typedef struct pogo_peer {
  pogo_link *up;       /* the one link carrying traffic */
  pogo_link *dial;     /* our pending dial by name */
  uint8_t wanted;      /* keep (re)connecting */
  uint8_t seed;        /* learned from a seed: never forgotten */
  uint8_t blocked;     /* pogo.block: never connected until unblocked */
  uint8_t shunned;     /* disconnected on purpose: not even its seed entry redials */
  uint8_t logged;      /* a failure was logged since the last success */
  uint32_t backoff;    /* next retry delay, ms */
  uint64_t next_at;    /* earliest next dial (loop ms) */
  uint64_t down_since; /* when it was last lost (for forgetting) */
  uint32_t creation;
  char *dialer;        /* name of the node that dialed the up link */
} pogo_peer;

/* A seed or a pogo.connect request, by address. */
struct pogo_target {
  pogo_target *next;
  char host[POGO_HOST_MAX];
  int port;
  char addr[POGO_HOST_MAX + 8];
  char *name;          /* learned from its handshake */
  uint8_t seed, logged;
  pogo_link *dial;
  uint32_t backoff;
  uint64_t next_at;
  int waiters;         /* registry ref: array {pid, ref, pid, ref, ...} or LUA_NOREF */
};

typedef struct pogo_dist_uv {
  uv_tcp_t listener;
  uv_timer_t tick;   /* heartbeats and handshake timeouts */
  uv_timer_t dialt;  /* next (re)dial */
  uv_prepare_t prep; /* flush batched writes before the loop polls */
  int open;
  pogo_dist *d;
} pogo_dist_uv;

struct pogo_dist {
  pogo_node *N;
  pogo_dist_uv *uv;
  char *name;
  size_t name_len;
  char host[POGO_HOST_MAX];
  int port;
  char *cookie;
  size_t cookie_len;
  uint32_t heartbeat_ms, timeout_ms, max_frame, backoff_min, backoff_max, forget_ms;
  int log;
  int stopping;      /* pogo.stop in progress: no new links */
  pogo_link *links;
  pogo_link *dirty;
  pogo_peer **peers; /* by node index */
  uint32_t npeers;
  pogo_target *targets;
  uint64_t dial_due; /* when the dial timer is set to fire, 0 if stopped */
  int ref_subs;      /* monitor_nodes subscribers: pid -> true */
  int ref_namemon;   /* remote monitors by name: ref serial -> {name, node} */
  msgpack_packer null_pk; /* checks that a message can be encoded */
};

/* ---- link.c ---- */
pogo_link *pogo_link_new(pogo_dist *d, int outgoing);
int pogo_link_read_start(pogo_link *l);
/* Start a frame of `kind` (reserving `hint` bytes); returns its offset or -1. */
size_t pogo_link_begin(pogo_link *l, uint8_t kind, size_t hint);
/* Finish it (limit: the peer's max frame). 0, or -1 if too large (dropped). */
int pogo_link_end(pogo_link *l, size_t start);
void pogo_link_cancel(pogo_link *l, size_t start);
void pogo_link_dirty(pogo_link *l); /* flush before the loop next polls */
void pogo_link_flush(pogo_link *l);
size_t pogo_link_backlog(const pogo_link *l);
void pogo_link_close(pogo_link *l);          /* now */
void pogo_link_close_graceful(pogo_link *l); /* after what is queued is written */
void pogo_link_wake_busy(pogo_link *l);
int pogo_link_add_busy(pogo_link *l, pogo_proc *p);
void pogo_link_prepare_cb(uv_prepare_t *h);

/* ---- mesh.c ---- */
int pogo_mesh_start(pogo_dist *d, lua_State *L, char *err, size_t errlen);
void pogo_mesh_stop(pogo_dist *d, lua_State *L, const char *reason); /* graceful */
int pogo_mesh_on_frame(pogo_link *l, const char *p, uint32_t n); /* 0, or -1 if l was closed */
void pogo_mesh_link_lost(pogo_link *l, const char *reason);
pogo_peer *pogo_mesh_peer(pogo_dist *d, uint32_t idx, int create);
pogo_link *pogo_mesh_up(pogo_dist *d, uint32_t idx); /* up link of a node or NULL */
/* Dial addr ("host:port" or a node name). Returns 1 with the node's name
 * pushed if it is already connected, 0 when the waiter (pid at pid_idx, ref
 * at ref_idx) will be told {ref, true, node} or {ref, false, reason}, -1 on
 * a bad address (err). */
int pogo_mesh_connect(pogo_dist *d, lua_State *L, const char *addr, int pid_idx, int ref_idx, char *err,
                      size_t errlen);
int pogo_mesh_disconnect(pogo_dist *d, lua_State *L, uint32_t idx, const char *reason);
void pogo_mesh_block(pogo_dist *d, lua_State *L, uint32_t idx, int flag);
void pogo_mesh_gossip_in(pogo_dist *d, lua_State *L, pogo_link *l);
void pogo_mesh_free(pogo_dist *d);
int pogo_mesh_add_seed(pogo_dist *d, const char *addr, char *err, size_t errlen);
int pogo_mesh_finish_stop(pogo_dist *d); /* 1 once a stopped node has no link left */
void pogo_dist_logf(pogo_dist *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- dist.c ---- */
/* A data frame arrived on an up link: 0, or -1 (protocol error, with *err). */
int pogo_dist_on_data(pogo_dist *d, pogo_link *l, const pogo_wire_msg *m, const char **err);
void pogo_dist_nodeup(pogo_dist *d, lua_State *L, uint32_t idx);
/* The up link of node idx is gone: monitors, links, subscribers (reason). */
void pogo_dist_nodedown(pogo_dist *d, lua_State *L, uint32_t idx, const char *reason);
void pogo_dist_free(pogo_dist *d, lua_State *L);

#endif
