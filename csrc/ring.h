/*
 * ring.h: consistent hash ring with virtual nodes (xxHash over the codec's
 * canonical encoding).
 *
 * Contract
 * - Nodes are strings with a positive weight; each gets round(vnodes * weight)
 *   points on a 64-bit ring. A key is owned by the first point clockwise of the
 *   hash of its canonical encoding.
 * - Ownership depends only on the set of (node, weight), never on insertion
 *   order, and is identical on every machine and endianness.
 * - Lookups of string and integer keys allocate nothing on the Lua heap.
 */
#ifndef POGO_RING_H
#define POGO_RING_H

#include <lua.h>

#include "codec.h"

/* Adds ring_new(opts) to the table at top of stack; ring objects are userdata
 * with methods add, remove, nodes, key_to_node, key_to_nodes, (see lua/pogo/ring.lua).
 * ext (the node's codec hooks, may be NULL) lets pids and refs be keys; it must
 * stay valid as long as the Lua state. */
void pogo_ring_register(lua_State *L, const pogo_codec_ext *ext);

#endif
