--- Consistent hash ring with virtual nodes.
--
-- Every node that holds the same set of (node, weight) pairs computes the same
-- owner for a key, whatever order the nodes were added in and whatever the
-- machine or its endianness; when a node joins or leaves, only the keys that
-- must move do (about 1/(n+1) of them on a join, the leaver's share on a leave).
--
--     local ring = require "pogo.ring"
--     local r = ring.new():add("a@10.0.0.1:4370"):add("b@10.0.0.2:4370", 2)
--     r:key_to_node({"worker", 42})       --> "b@10.0.0.2:4370"
--     r:key_to_nodes("session:17", 2)     --> {"a@...", "b@..."}
--
-- How it works (lives in C, `csrc/ring.c`):
--
-- * A node of weight `w` gets `round(vnodes * w)` points (at least 1). Point `i`
--   (from 0) is `XXH3_64bits(name .. be32(i), seed 0)`, the name's bytes
--   followed by `i` as 4 big-endian bytes.
-- * A key is hashed with XXH3 (seed 0) over its canonical msgpack encoding
--   (`pogo.core` codec), so equal tables are equal keys; `42` and `42.0` are
--   different keys, as they encode differently (so are `0.0` and `-0.0`).
-- * The key belongs to the first point clockwise: the smallest point hash that
--   is `>=` the key's hash, wrapping round to the first point. Points with equal
--   hashes are ordered by node name bytes.
-- * Changing a node's weight keeps its first points, so only the difference moves.
-- * `add` and `remove` change the nodes at once (`nodes`, `size`, `weight`);
--   the points follow at the next call that needs them, which places every
--   node added and drops every node removed since in one pass (a lookup
--   skips a removed node's points without it). So a run of adds costs one
--   merge, and a remove followed by lookups (a failover) does not go through
--   the whole ring; the answers are those of the ring with all the changes.
--
-- Choice of the default `vnodes` (2048), by measurement: 200 random sets of 10
-- nodes, 100,000 string keys each; one join and one leave per set, moved keys
-- as a ratio to the ideal 1/(n+1) and 1/n:
--
--     vnodes   max/mean: mean  p90    worst   moved, worst ratio: join  leave
--        128             1.143 1.210  1.292                      1.249  1.278
--        256             1.099 1.141  1.203                      1.118  1.131
--        512             1.070 1.103  1.129                      1.119  1.111
--       1024             1.051 1.071  1.113                      1.065  1.085
--       1536             1.043 1.063  1.079                      1.073  1.076
--       2048             1.037 1.050  1.078                      1.049  1.057
--       4096             1.029 1.039  1.060                      1.043  1.044
--
-- Independent random points give each node a share that strays by about
-- `1/sqrt(vnodes)`, so balance is bought with points: at 1024 about one node
-- set in a hundred misses max/mean <= 1.10, at 2048 none of 200 did, with a
-- margin on the moved fraction too (target 1.1 x ideal). (With 100 nodes,
-- 100,000 keys are only 1,000 per node, and counting noise alone puts max/mean
-- near 1.08 however many points.) The price is memory, about 13.5 bytes per
-- point (8 hash, 4 owner, 1 to 2 index): 0.27 MiB for 10 nodes, 2.6 MiB for
-- 100 (up to an eighth more: the arrays grow with that much room, so that
-- most adds need no realloc), and an add or remove costs O(points) (a
-- merge). Use
-- `ring.new{vnodes = 256}` where memory matters more than balance (libring's
-- default is 128 points per node). Lookup time hardly depends on the size: a
-- bucket index on the top bits of the hash narrows the binary search to a few
-- points.
--
-- @module pogo.ring

local core = require "pogo.core"

local M = {}

--- Points per node of weight 1 when `new` is given no `vnodes`.
M.DEFAULT_VNODES = core.ring_default_vnodes

--- Creates an empty ring.
-- @tparam[opt] table opts `vnodes`: points per node of weight 1, an integer in
--   1..2^20 (default `DEFAULT_VNODES`). Every node that must agree on owners
--   must use the same value.
-- @treturn Ring
function M.new(opts)
  return core.ring_new(opts)
end

--- A ring (C userdata; its methods are the C functions themselves).
-- `#r` is the number of nodes; `tostring(r)` summarizes it.
-- @type Ring

--- Adds a node, or sets the weight of a node already there.
-- @function Ring:add
-- @string node the node's name, a non-empty string
-- @number[opt=1] weight a positive finite number; the node gets
--   `round(vnodes * weight)` points, so weight 2 takes about twice the keys
-- @return the ring, for chaining
-- @raise on a name that is not a string, or a weight that is not positive

--- Removes a node.
-- @function Ring:remove
-- @string node the node's name
-- @treturn boolean true if it was there, false (and nothing changes) if not

--- The nodes, sorted by name (byte order).
-- @function Ring:nodes
-- @treturn {string,...}

--- The owner of a key. Allocates nothing on the Lua heap for string and
-- integer keys.
-- @function Ring:key_to_node
-- @param key any serializable value but nil (strings, numbers, booleans,
--   tables of those)
-- @treturn[1] string the node
-- @return[2] nil
-- @return[2] "empty ring"
-- @raise on a nil or unserializable key

--- Up to `n` distinct nodes for a key, for replicas or fallbacks: the owner
-- first, then the next distinct nodes clockwise. Fewer than `n` when the ring
-- has fewer nodes. The order is stable: it depends only on the set of nodes.
-- @function Ring:key_to_nodes
-- @param key as for `key_to_node`
-- @int n at least 1
-- @treturn[1] {string,...}
-- @return[2] nil
-- @return[2] "empty ring"
-- @raise on a bad key or `n < 1`

--- The share of the hash space each node owns (the fraction of keys it
-- gets, on average): point `i` owns the keys from the point before it
-- (exclusive) up to itself. The shares add up to 1 (empty on an empty ring).
-- @function Ring:shares
-- @treturn table node name -> fraction from 0 to 1

--- The weight of a node.
-- @function Ring:weight
-- @string node
-- @treturn number|nil the weight, or nil if the node is not in the ring

--- The number of nodes (same as `#r`).
-- @function Ring:size
-- @treturn int

--- The number of points on the ring (all nodes).
-- @function Ring:points
-- @treturn int

--- The `i`-th point in ring order, for specs and tools.
-- @function Ring:point
-- @int i from 1 to `r:points()`
-- @treturn[1] int the point's 64-bit hash in a Lua integer (order: `math.ult`)
-- @treturn[1] string its node
-- @return[2] nil when `i` is out of range

--- Points per node of weight 1.
-- @function Ring:vnodes
-- @treturn int

--- Bytes of C memory the ring holds (points, index, node records; not the
-- Lua table of names).
-- @function Ring:memory
-- @treturn int

return M
