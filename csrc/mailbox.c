/*
 * mailbox.c: message delivery and receiving.
 *
 * Contract
 * - A mailbox is a Lua table used as a queue (keys mb_head..mb_tail-1), created
 *   on a process's first message, and let go when it empties after it held
 *   more than MBOX_KEEP messages (a table keeps the slots of its peak).
 *   Local messages are stored as they are: never copied, never serialized.
 * - Order is kept; taking a message from the middle (selective receive) keeps
 *   the order of the others.
 * - A message to a process that waits in receive() with an empty mailbox is
 *   handed to it (pushed onto its coroutine's stack, RK_HANDED) instead of
 *   queued: it is the value its receive returns; it counts in
 *   message_queue_len until then.
 * - receive() takes the head; a process blocks by yielding, the main chunk by
 *   driving the loop (see sched.c).
 * - A message to a pid or a name on another node goes through remote.h (it is
 *   serialized there, or dropped if that node is not connected); one from
 *   another node arrives through pogo_mailbox_post, already decoded.
 * - A message to {"via", module, name} goes to the pid that via.c resolves.
 *   {name, node} whose node has no '@' is a mistake, not a node that is away:
 *   it raises (so does {"via", module} without its name, which reads as one).
 */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "remote.h"

/* Push the mailbox table of p (creating it if `create`); pushes nil if none. */
static void push_mbox(pogo_node *N, lua_State *L, pogo_proc *p, int create) {
  pogo_node_push_ref(L, N->ref_mbox);
  if (lua_rawgeti(L, -1, p->slot) == LUA_TNIL && create) {
    lua_pop(L, 1);
    lua_createtable(L, 4, 0);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, p->slot);
    p->flags |= PF_MBOX;
  }
  lua_remove(L, -2);
}

/* Is the message at idx a late reply {ref, ...} to a call p gave up? Then it
 * is forgotten (and so is the ref). */
static int late_reply(pogo_node *N, lua_State *L, pogo_proc *p, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_rawgeti(L, idx, 1);
  pogo_id rid;
  int hit = 0;
  if (pogo_ident_get(L, -1, &rid) && rid.kind == POGO_KIND_REF && rid.node == 0 && rid.creation == N->creation) {
    pogo_abandoned *a = p->abandoned;
    for (uint32_t i = 0; i < a->n; i++) {
      if (a->ref[i] == rid.serial) {
        a->ref[i] = a->ref[--a->n];
        if (a->next > a->n) a->next = a->n;
        hit = 1;
        break;
      }
    }
  }
  lua_pop(L, 1);
  return hit;
}

void pogo_mailbox_deliver(pogo_node *N, lua_State *L, pogo_proc *p, int msg_idx) {
  msg_idx = lua_absindex(L, msg_idx);
  if (p->abandoned && late_reply(N, L, p, msg_idx)) return;
  if (p->state == PS_WAITING && p->resume == RK_MSG && p->mb_head == p->mb_tail && p->co &&
      lua_checkstack(p->co, 1)) {
    /* it waits in receive() with an empty mailbox: this message is what it
     * gets when it runs next, so it goes straight onto its stack */
    lua_pushvalue(L, msg_idx);
    lua_xmove(L, p->co, 1);
    p->resume = RK_HANDED;
    pogo_sched_wake(N, p);
    return;
  }
  push_mbox(N, L, p, 1);
  lua_pushvalue(L, msg_idx);
  lua_rawseti(L, -2, p->mb_tail++);
  lua_pop(L, 1);
  N->delivered++;
  if (p->state == PS_WAITING) pogo_sched_wake(N, p);
}

int pogo_mailbox_post(pogo_node *N, lua_State *L, const pogo_id *to, int msg_idx) {
  pogo_proc *p = pogo_proc_get(N, to);
  if (!p) return 0;
  pogo_mailbox_deliver(N, L, p, msg_idx);
  return 1;
}

/* A mailbox that held more than this many messages at once is let go once
 * it is empty (a new one comes with the next message): a Lua table keeps the
 * slots of its peak, 200,000 messages' worth after a burst. */
#define MBOX_KEEP 1024

/* p's mailbox is empty: its keys start again at 1, and a big table goes. */
static void emptied(pogo_node *N, lua_State *L, pogo_proc *p) {
  uint32_t peak = p->mb_tail;
  p->mb_head = p->mb_tail = 1;
  if (peak <= MBOX_KEEP || !(p->flags & PF_MBOX)) return;
  pogo_node_push_ref(L, N->ref_mbox);
  lua_pushnil(L);
  lua_rawseti(L, -2, p->slot);
  lua_pop(L, 1);
  p->flags &= ~PF_MBOX;
}

/* Pop the head of p's mailbox onto L (p must have a message). */
static void pop_head(pogo_node *N, lua_State *L, pogo_proc *p) {
  push_mbox(N, L, p, 0);
  lua_rawgeti(L, -1, p->mb_head);
  lua_pushnil(L);
  lua_rawseti(L, -3, p->mb_head);
  lua_remove(L, -2);
  if (++p->mb_head == p->mb_tail) emptied(N, L, p);
}

/* Take the message at absolute key k out of p's mailbox, keeping order. */
static void take_at(pogo_node *N, lua_State *L, pogo_proc *p, uint32_t k) {
  push_mbox(N, L, p, 0);
  int t = lua_gettop(L);
  lua_rawgeti(L, t, k);
  for (uint32_t j = k; j + 1 < p->mb_tail; j++) {
    lua_rawgeti(L, t, j + 1);
    lua_rawseti(L, t, j);
  }
  lua_pushnil(L);
  lua_rawseti(L, t, p->mb_tail - 1);
  p->mb_tail--;
  lua_remove(L, t);
  if (p->mb_head == p->mb_tail) emptied(N, L, p);
}

/* Send the message at msg_idx to the process registered under the name at name_idx. */
static int send_named_local(pogo_node *N, lua_State *L, int name_idx, int msg_idx) {
  pogo_id id;
  pogo_node_push_ref(L, N->ref_names);
  lua_pushvalue(L, name_idx);
  if (lua_rawget(L, -2) != LUA_TUSERDATA || !pogo_ident_is_pid(L, -1, &id))
    return luaL_error(L, "noproc: no process registered as '%s'", lua_tostring(L, name_idx));
  pogo_proc *p = pogo_proc_get(N, &id);
  if (p) pogo_mailbox_deliver(N, L, p, msg_idx);
  return 0;
}

/* Send the message at msg_idx to the pid `id` (a dead local pid: nothing). */
static int send_pid(pogo_node *N, lua_State *L, const pogo_id *id, int msg_idx) {
  if (id->node == 0) {
    pogo_proc *p = pogo_proc_get(N, id);
    if (p) pogo_mailbox_deliver(N, L, p, msg_idx);
    return 0;
  }
  char err[POGO_CODEC_ERRLEN];
  int r = pogo_remote_send(N, L, id, msg_idx, err);
  if (r < 0) return luaL_error(L, "%s", err);
  if (r > 0) return lua_yield(L, 0); /* suspended until the link's backlog drains */
  return 0;
}

/* send(dest, msg): dest is a pid, a registered name, {name, node} or
 * {"via", module, name} (see via.c) */
static int l_send(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  pogo_id id;
  char err[POGO_CODEC_ERRLEN];
  if (pogo_ident_is_pid(L, 1, &id)) return send_pid(N, L, &id, 2);
  int t = lua_type(L, 1);
  if (t == LUA_TSTRING) return send_named_local(N, L, 1, 2);
  if (t == LUA_TTABLE && pogo_via_is(L, 1)) {
    pogo_via_whereis(L, 1);
    if (!pogo_ident_is_pid(L, 3, &id)) {
      lua_rawgeti(L, 1, 3);
      lua_rawgeti(L, 1, 2);
      return luaL_error(L, "noproc: no process registered as '%s' in %s", luaL_tolstring(L, 4, NULL),
                        lua_tostring(L, 5));
    }
    return send_pid(N, L, &id, 2);
  }
  if (t == LUA_TTABLE) {
    lua_rawgeti(L, 1, 1);
    lua_rawgeti(L, 1, 2);
    if (lua_type(L, 3) != LUA_TSTRING || lua_type(L, 4) != LUA_TSTRING)
      return luaL_argerror(L, 1, "{name, node} expects two strings");
    size_t nl;
    const char *node = lua_tolstring(L, 4, &nl);
    if (!memchr(node, '@', nl)) { /* not a node name: a mistake, not a node that is away */
      if (strcmp(lua_tostring(L, 3), "via") == 0)
        return luaL_argerror(L, 1, "{\"via\", module, name} has no name (nil)");
      return luaL_argerror(L, 1, "{name, node}: node must be a node name (name@host:port)");
    }
    uint32_t idx = pogo_nodenames_index(N, L, node, nl);
    if (idx == 0) return send_named_local(N, L, 3, 2);
    int r = pogo_remote_send_named(N, L, idx, 3, 2, err);
    if (r < 0) return luaL_error(L, "%s", err);
    if (r > 0) return lua_yield(L, 0);
    return 0;
  }
  return luaL_argerror(L, 1, "pid, registered name, {name, node} or {\"via\", module, name} expected");
}

/* receive([timeout_ms]) -> msg | nothing on timeout */
static int l_receive(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Integer timeout = luaL_optinteger(L, 1, -1);
  pogo_proc *p = N->current;
  if (p) {
    if (p->co != L) return luaL_error(L, "pogo.receive: called from a coroutine nested in a process");
    if (p->mb_head < p->mb_tail) {
      pop_head(N, L, p);
      return 1;
    }
    if (timeout == 0) return 0;
    p->state = PS_WAITING;
    p->resume = RK_MSG;
    if (timeout > 0) pogo_timer_arm(N, p, pogo_node_now(N) + (uint64_t)timeout);
    return lua_yield(L, 0);
  }
  if (timeout != 0) pogo_sched_check_can_drive(N, L, "pogo.receive"); /* receive(0) never waits */
  p = pogo_proc_external(N, L);
  if (p->mb_head == p->mb_tail && timeout != 0) {
    int r = pogo_sched_drive(N, L, p, p->mb_tail, timeout);
    if (r < 0) return luaL_error(L, "pogo.receive: deadlock: no process, timer or I/O can ever send to the main chunk");
  }
  if (p->mb_head < p->mb_tail) {
    pop_head(N, L, p);
    return 1;
  }
  return 0;
}

/* wait([timeout_ms], [seen]) -> true if a message arrived after the call,
 * false on timeout. With `seen` (messages the caller has looked at), it
 * returns true at once when the mailbox already holds more than that: a
 * message that came while the caller was preempted between looking and
 * waiting is not missed. */
static int l_wait(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Integer timeout = luaL_optinteger(L, 1, -1);
  lua_Integer seen = luaL_optinteger(L, 2, -1);
  pogo_proc *p = N->current;
  if (p) {
    if (p->co != L) return luaL_error(L, "pogo.receive: called from a coroutine nested in a process");
    if (seen >= 0 && (lua_Integer)(p->mb_tail - p->mb_head) > seen) { lua_pushboolean(L, 1); return 1; }
    if (timeout == 0) { lua_pushboolean(L, 0); return 1; }
    p->state = PS_WAITING;
    p->resume = RK_WAKE;
    p->nargs = (int32_t)p->mb_tail;
    if (timeout > 0) pogo_timer_arm(N, p, pogo_node_now(N) + (uint64_t)timeout);
    return lua_yield(L, 0);
  }
  if (timeout != 0) pogo_sched_check_can_drive(N, L, "pogo.receive");
  p = pogo_proc_external(N, L);
  if (seen >= 0 && (lua_Integer)(p->mb_tail - p->mb_head) > seen) { lua_pushboolean(L, 1); return 1; }
  if (timeout == 0) { lua_pushboolean(L, 0); return 1; }
  int r = pogo_sched_drive(N, L, p, p->mb_tail, timeout);
  if (r < 0) return luaL_error(L, "pogo.receive: deadlock: no process, timer or I/O can ever send to the main chunk");
  lua_pushboolean(L, r == 0);
  return 1;
}

/* mbox_len() -> number of messages of the caller */
static int l_mbox_len(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  lua_pushinteger(L, p->mb_tail - p->mb_head);
  return 1;
}

/* mbox_peek(i) -> i-th message (1 = oldest) */
static int l_mbox_peek(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Integer i = luaL_checkinteger(L, 1);
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  if (i < 1 || i > (lua_Integer)(p->mb_tail - p->mb_head)) return 0;
  push_mbox(N, L, p, 0);
  lua_rawgeti(L, -1, p->mb_head + (uint32_t)i - 1);
  return 1;
}

/* mbox_take(i) -> removes and returns the i-th message */
static int l_mbox_take(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Integer i = luaL_checkinteger(L, 1);
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  if (i < 1 || i > (lua_Integer)(p->mb_tail - p->mb_head)) return 0;
  take_at(N, L, p, p->mb_head + (uint32_t)i - 1);
  return 1;
}

/* Does message at idx answer ref? mode 0: reply {ref, ...} or DOWN; 1: DOWN only. */
static int matches_ref(lua_State *L, int idx, int ref_idx, int mode) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_rawgeti(L, idx, 1);
  int hit = 0;
  if (mode == 0 && lua_rawequal(L, -1, ref_idx)) hit = 1;
  else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "DOWN") == 0) {
    lua_rawgeti(L, idx, 2);
    hit = lua_rawequal(L, -1, ref_idx);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return hit;
}

/* mbox_find_ref(ref, from) -> i | nil: first message at or after position
 * `from` that is a reply {ref, ...} or {"DOWN", ref, ...} */
static int l_mbox_find_ref(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  luaL_checkany(L, 1);
  lua_Integer from = luaL_optinteger(L, 2, 1);
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  lua_Integer n = p->mb_tail - p->mb_head;
  if (from < 1) from = 1;
  if (from > n) return 0;
  push_mbox(N, L, p, 0);
  int t = lua_gettop(L);
  for (lua_Integer i = from; i <= n; i++) {
    lua_rawgeti(L, t, p->mb_head + (uint32_t)i - 1);
    int hit = matches_ref(L, -1, 1, 0);
    lua_pop(L, 1);
    if (hit) { lua_pushinteger(L, i); return 1; }
  }
  return 0;
}

/* mbox_flush_down(ref) -> number of {"DOWN", ref, ...} messages removed */
static int l_mbox_flush_down(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  luaL_checkany(L, 1);
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  int removed = 0;
  for (uint32_t k = p->mb_head; k < p->mb_tail;) {
    push_mbox(N, L, p, 0);
    lua_rawgeti(L, -1, k);
    int hit = matches_ref(L, -1, 1, 1);
    lua_pop(L, 2);
    if (hit) { take_at(N, L, p, k); lua_pop(L, 1); removed++; }
    else k++;
  }
  lua_pushinteger(L, removed);
  return 1;
}

/* abandon_ref(ref): the caller gave up waiting for a reply {ref, ...}; drop it when it comes */
static int l_abandon_ref(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id rid;
  if (!pogo_ident_get(L, 1, &rid) || rid.kind != POGO_KIND_REF) return luaL_argerror(L, 1, "ref expected");
  if (rid.node != 0 || rid.creation != N->creation) return 0;
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  if (!p->abandoned) {
    p->abandoned = calloc(1, sizeof *p->abandoned);
    if (!p->abandoned) return 0;
  }
  pogo_abandoned *a = p->abandoned;
  if (a->n < POGO_ABANDONED_MAX) {
    a->ref[a->n++] = rid.serial;
  } else {
    a->ref[a->next] = rid.serial; /* full: forget the oldest slot in turn */
    a->next = (a->next + 1) % POGO_ABANDONED_MAX;
  }
  return 0;
}

void pogo_mailbox_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"send", l_send}, {"receive", l_receive}, {"wait", l_wait},
    {"mbox_len", l_mbox_len}, {"mbox_peek", l_mbox_peek}, {"mbox_take", l_mbox_take},
    {"mbox_find_ref", l_mbox_find_ref}, {"abandon_ref", l_abandon_ref}, {"mbox_flush_down", l_mbox_flush_down}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
