/*
 * dist.h: what the process runtime asks of the transport for remote pids.
 *
 * Contract
 * - Every function takes ids whose node is not this node (node != 0).
 * - When the peer is not connected, messages are dropped (as Erlang does),
 *   monitors fire {"DOWN", ref, pid, "noconnection"} and links deliver the exit
 *   signal "noconnection" to the local side, at once.
 * - pogo_dist_send returns 0, or -1 with the reason in err (e.g. a message that
 *   cannot be serialized: "msg.handler: function cannot be sent"); the caller
 *   raises it in the sender. A message that cannot be serialized fails even
 *   when the peer is not connected. It returns 1 when the link's backlog is
 *   over its limit and the caller, a process, has been suspended: the caller
 *   must `return lua_yield(L, 0)` (it is resumed once the backlog drains or
 *   the link goes). The main chunk instead waits inside the call; a luv
 *   callback just queues.
 * - Monitors by name ({name, node}) report {"DOWN", ref, {name, node}, reason}.
 * - Messages between two processes arrive in the order they were sent.
 */
#ifndef POGO_DIST_H
#define POGO_DIST_H

#include "runtime.h"

int pogo_dist_send(pogo_node *N, lua_State *L, const pogo_id *to, int msg_idx, char err[POGO_CODEC_ERRLEN]);
int pogo_dist_send_named(pogo_node *N, lua_State *L, uint32_t node, int name_idx, int msg_idx,
                         char err[POGO_CODEC_ERRLEN]);
/* from is local, to is remote */
void pogo_dist_link(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to);
void pogo_dist_unlink(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to);
void pogo_dist_exit(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx, int linked);
void pogo_dist_monitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target);
/* Monitor the process registered as the string at name_idx on node `node`.
 * The caller records (ref, {node = node, serial = 0}) in the watcher's
 * `watching` set; demonitor and exit pass that placeholder back as target. */
void pogo_dist_monitor_name(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                            int name_idx);
/* watcher is remote: tell its node that `who` went down with the reason at idx */
void pogo_dist_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who, int reason_idx);
void pogo_dist_demonitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target);

/* Adds the core.dist_* functions to the table at -2 (node userdata at -1). */
void pogo_dist_register(lua_State *L);

#endif
