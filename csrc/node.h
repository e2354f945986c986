/*
 * node.h: the node of a Lua state (see runtime.h for the data it holds).
 *
 * Contract
 * - pogo_node_open(L): creates the node on first call (requires luv and uses
 *   luv's loop) and leaves its userdata on the stack; later calls return the
 *   same node. All state hangs off that userdata; its __gc releases everything.
 * - pogo_node_register(L): adds the runtime's Lua-facing functions to the table
 *   at -2 (the node userdata is at -1): processes, mailboxes, links and
 *   monitors, the scheduler, names, pids and refs. Nothing of the transport.
 */
#ifndef POGO_NODE_H
#define POGO_NODE_H

#include <lua.h>

struct pogo_node;
struct pogo_node *pogo_node_open(lua_State *L);
void pogo_node_register(lua_State *L);

#endif
