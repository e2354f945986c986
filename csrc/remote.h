/*
 * remote.h: how the runtime reaches processes on other nodes: one ops table on
 * the node (N->remote, with its context N->remote_ctx) that a transport
 * installs, the way the codec reaches pids through pogo_codec_ext and skynet's
 * core reaches other nodes only through its harbor. The transport in
 * csrc/dist/ installs it when pogo.start runs (core.dist_start) and removes it
 * when it closes.
 *
 * Contract
 * - The runtime calls the pogo_remote_* functions below (remote.c), never a
 *   transport by name. Each calls the op; when there is no transport, or the op
 *   answers POGO_REMOTE_NOCONN (that node is not connected), it does what
 *   Erlang does for a node that is not connected, here and nowhere else:
 *     send, send_named  the message is dropped, but it must still be
 *                       serializable: otherwise the error, naming the path
 *                       ("msg.handler: function cannot be sent"), is raised
 *                       in the sender;
 *     link              the linking process gets the exit signal
 *                       "noconnection" at once;
 *     monitor           {"DOWN", ref, pid, "noconnection"} at once;
 *     monitor_name      {"DOWN", ref, {name, node}, "noconnection"} at once;
 *     unlink, exit, demonitor, demonitor_name, down: nothing.
 * - Ops get ids whose node is not this node (node != 0), and names of 1 to
 *   POGO_REMOTE_NAME_MAX bytes (checked here: a longer name given to send
 *   raises, a monitor of one is not connected). An op returns POGO_REMOTE_OK
 *   or POGO_REMOTE_NOCONN; send and send_named may also return
 *   POGO_REMOTE_ERROR (err filled: the message cannot be encoded or is too
 *   large) or POGO_REMOTE_SUSPENDED (the connection's backlog is over its
 *   limit and the calling process was suspended with pogo_sched_suspend: it
 *   must yield; the main chunk waits inside the op instead, a luv callback
 *   just queues). Ops never raise.
 * - Monitors by name: the runtime records {name, node} under the ref
 *   (N->ref_namemon) and the watcher's `watching` set holds the placeholder
 *   {node = node, serial = 0}; demonitor and exit hand that placeholder back,
 *   and the DOWN reports {name, node} (pogo_links_remote_down).
 * - The transport reports what peers do only through runtime functions
 *   (runtime.h: pogo_links_peer_*, pogo_links_node_down, pogo_mailbox_post,
 *   pogo_names_whereis, ...). Messages between two processes arrive in the
 *   order they were sent.
 * - close(ctx, L) frees the transport when the node itself goes (its Lua state
 *   closes); the transport removes the table (pogo_remote_set(N, NULL, NULL))
 *   whenever it closes.
 */
#ifndef POGO_REMOTE_H
#define POGO_REMOTE_H

#include "runtime.h"

#define POGO_REMOTE_NAME_MAX 1024 /* registered names sent to other nodes */

enum {
  POGO_REMOTE_ERROR = -1,
  POGO_REMOTE_OK = 0,
  POGO_REMOTE_NOCONN,
  POGO_REMOTE_SUSPENDED
};

typedef struct pogo_remote_ops {
  int (*send)(void *ctx, lua_State *L, const pogo_id *to, int msg_idx, char err[POGO_CODEC_ERRLEN]);
  int (*send_named)(void *ctx, lua_State *L, uint32_t node, const char *name, size_t len, int msg_idx,
                    char err[POGO_CODEC_ERRLEN]);
  /* from is local, to is remote */
  int (*link)(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to);
  int (*unlink)(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to);
  int (*exit)(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx, int linked);
  /* watcher is local, target remote */
  int (*monitor)(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target);
  int (*monitor_name)(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                      const char *name, size_t len);
  int (*demonitor)(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target);
  int (*demonitor_name)(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                        const char *name, size_t len);
  /* watcher is remote: tell its node that local `who` went down with the reason at idx */
  int (*down)(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who, int reason_idx);
  void (*close)(void *ctx, lua_State *L);
} pogo_remote_ops;

/* Install (or, with NULL, remove) the node's ops table. */
void pogo_remote_set(pogo_node *N, const pogo_remote_ops *ops, void *ctx);

/* 0 (sent or dropped), 1 (the calling process was suspended: it must
 * `return lua_yield(L, 0)`), or -1 with the reason in err. */
int pogo_remote_send(pogo_node *N, lua_State *L, const pogo_id *to, int msg_idx, char err[POGO_CODEC_ERRLEN]);
/* To the process registered as the string at name_idx on node `node`. */
int pogo_remote_send_named(pogo_node *N, lua_State *L, uint32_t node, int name_idx, int msg_idx,
                           char err[POGO_CODEC_ERRLEN]);
void pogo_remote_link(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to);
void pogo_remote_unlink(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to);
void pogo_remote_exit(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx,
                      int linked);
/* The caller has recorded (ref, target) in the watcher's `watching` set. */
void pogo_remote_monitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target);
/* Monitor the name at name_idx on node `node`; the caller has recorded (ref,
 * {node = node, serial = 0}) in the watcher's `watching` set. */
void pogo_remote_monitor_name(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                              int name_idx);
/* target: the pid, or the placeholder of a monitor by name. */
void pogo_remote_demonitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target);
void pogo_remote_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who,
                      int reason_idx);
/* Push the {name, node} of monitor `ref` by name and forget it: 1, or 0
 * (nothing pushed) if there is none. */
int pogo_remote_take_name(pogo_node *N, lua_State *L, uint64_t ref);
/* The node is going: close the transport, if any. */
void pogo_remote_close(pogo_node *N, lua_State *L);

#endif
