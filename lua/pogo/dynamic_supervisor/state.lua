--- The state of one node's distributed supervisor process, and its record of
-- each child id.
--
-- Every field is declared and commented here, as `pg.erl` declares its
-- `#state{}`; the other parts of `pogo.dynamic_supervisor` read and change
-- them. What this node knows and does about one child id lives in one record,
-- keyed by the canonical encoding of the id (equal tables are one id): the
-- requests for it, where the ring put it, where it last ran, and the child
-- process this node runs for it, if any. The sets of the state that name
-- records (`dirty`, `unsettled`, `timed`) are work lists over them, not copies
-- of their data.
--
-- Only the supervisor process changes the state. Other processes of the node
-- read it (`views.lua`: `whereis`, `which_children`, ... answer without the
-- supervisor), so a reader never waits for the supervisor; `version` tells a
-- reader whether a callback ran (or runs) while it read.
-- @module pogo.dynamic_supervisor.state
local pogo = require "pogo"
local pg = require "pogo.pg"
local ring_mod = require "pogo.ring"
local log = require "pogo.log"

local encode = pogo.core.encode

local M = {}

--- A new state from the `start_link` options.
-- @tparam table opts
-- @treturn table
function M.new(opts)
  local allow = opts.nodes and {} or false
  if allow then
    for _, node in ipairs(opts.nodes) do allow[#allow + 1] = node end
    table.sort(allow)
  end
  return {
    -- what start_link was given
    name = opts.name,                   -- registered on this node (nil: not registered)
    scope = opts.scope or opts.name,    -- the pg scope: its supervisors form one distributed supervisor
    opts = opts,                        -- the options as given (`log`, ...)
    me = pogo.node(),                   -- this node's name
    pid = pogo.self(),                  -- the supervisor process
    listeners = opts.listeners or {},   -- tables of listener functions (events.lua)
    redistribute = opts.redistribute or "active", -- "active": running children move to a new owner;
                                        -- "on_failure": they move only when their node goes (or rebalance)
    intensity = opts.intensity or 3,    -- restarts of one child within `period`, then it backs off
    period = opts.period_ms or 5000,
    min_backoff = opts.min_backoff_ms or 50,   -- the delays between retries of a child that
    max_backoff = opts.max_backoff_ms or 5000, -- cannot start, or restarts beyond the intensity
    settle = opts.settle_ms or 1000,    -- the longest a joining node is waited for (join_wait.lua)
    sync_interval = opts.sync_interval or 5000, -- ms between repair passes
    sweep_passes = opts.sweep_passes or 12,     -- repair passes per sweep over every record
    tombstone_ms = opts.tombstone_ms or 600000, -- how long a terminated request is remembered, and
                                        -- a lost temporary child waited for (requests.lua)
    weight = opts.weight or 1,          -- this node's share of the ring (published in its "sup" group)
    allow = allow,                      -- the `nodes` option, sorted, or false (published too)
    logger = log.with { module = "pogo.dynamic_supervisor", supervisor = tostring(opts.name or opts.scope) },

    -- readers (views.lua): other processes of the node read this state
    version = 0,                        -- even while no callback runs; a callback makes it odd on
                                        -- entry and even again on return, so a reader that saw it
                                        -- change (or odd) reads again

    -- the nodes (placement.lua)
    ring = ring_mod.new(opts.vnodes and { vnodes = opts.vnodes } or nil), -- the ring of `ring_nodes`
    sups = {},                          -- node -> {pid =, weight =, allow = set | false}: every
                                        -- supervisor of the scope (its {"sup", weight, nodes} group)
    ring_nodes = {},                    -- node -> its `sups` entry: the supervisors in the ring (those
                                        -- that every `nodes` list names)
    ring_stale = false,                 -- `sups` changed and the ring is rebuilt at the next change of
                                        -- them, which is the next message (placement.on_sup)
    down_reason = {},                   -- node -> the reason of its last nodedown (node_down listeners)
    last_down = nil,                    -- when a node last went down (pogo.now() ms; requests.lua's tombstones)
    pg_ref = nil,                       -- this process's monitor of the scope

    -- requests and children (requests.lua, children.lua, starter.lua)
    children = {},                      -- key -> the record of that child id (`child` below)
    requests = {},                      -- uid -> request {uid, spec, group, held, child} (requests.lua)
    markers = {},                       -- uid -> termination marker {group, present, held, since}
    lost = {},                          -- uid -> lost note {group, present, held, since}: the request's
                                        -- temporary child ran on a node that went (requests.lua)
    unheld = {},                        -- request -> since when no node holds it (requests.take_over)
    unheld_next = nil,                  -- when the first of those may be taken over by any node
    gone = { head = 1, tail = 0 },      -- markers that went (no node holds them), in order: [i] = uid,
                                        -- [-i] = its `since` then (requests.expire_gone)
    by_pid = {},                        -- pid of a child this node runs -> its record
    owned = {},                         -- node (false: none) -> {record -> true}: the records whose
                                        -- noted owner it is (M.note_owner), so the records of a node
                                        -- that leaves are found without a walk over all of them
    to_start = {},                      -- records waiting for a starter (children.launch): a queue,
    to_start_head = 1,                  -- from this index
    to_start_tail = 0,                  -- to this one
    starters = {},                      -- starter pid -> {ref = its monitor, records = the records it
                                        -- starts, n = how many (0: idle), done = the starts it
                                        -- reported, since = when it got them} (starter.lua)
    idle = {},                          -- the idle starters
    start_refs = {},                    -- monitor ref of a starter -> its pid
    handed = {},                        -- records whose child was handed over since the mailbox was
                                        -- last drained (children.handed_over)
    awaiting = {},                      -- monitor ref of a starter asked for a child's exit reason -> record
    passing = { n = 0, until_ms = 0, refs = {} }, -- handoff data passed on to a child's owner, whose
                                        -- answer its sender waits for (handoff.lua): refs, the monitor
                                        -- ref of that owner's supervisor -> {reply_to, ref} of the
                                        -- sender and the data; n of them; given up at until_ms
    stopping = false,                   -- the supervisor stops in order (terminate): it left the ring
    coming = {},                        -- key -> until when (pogo.now() ms) its start waits for handoff
                                        -- data a stopping node said is on its way (handoff.expect)
    coming_next = nil,                  -- the earliest of those (nil: none)
    keeper = nil,                       -- the keeper process (requests.lua) and this process's
    keeper_ref = nil,                   -- monitor of it
    uid_prefix = nil,                   -- "node/creation/": the uids of this node's requests go on
                                        -- with a sequence number (requests.request)
    memory = nil,                       -- what this node's supervisor of the scope remembers across
                                        -- its restarts (requests.memory): the temporary children started

    -- listeners (events.lua)
    notifier = nil,                     -- the process that calls the listeners, and this process's
    notifier_ref = nil,                 -- monitor of it

    -- what to reconcile next (see `reconcile` in pogo.dynamic_supervisor)
    dirty = {},                         -- record -> true: reconcile it once the mailbox is drained
    spare = {},                         -- an empty set, swapped with `dirty` while reconciling
    all_dirty = true,                   -- reconcile every record (at start)
    unsettled = {},                     -- record -> true: this node should act on it but waits (its
                                        -- old owner still runs it, or a node is joining)
    timed = {},                         -- record -> true: its child process has a deadline (children.lua)
    local_count = { specs = 0, active = 0, supervisors = 0, workers = 0 }, -- count_children(sup,
                                        -- "local"), moved as the children here change (children.lua)

    -- the global view (tally.lua)
    count = { specs = 0, active = 0, supervisors = 0, workers = 0 }, -- count_children(sup, "global")
    touched = {},                       -- the records whose part of the global view may have changed
                                        -- (an array: a set emptied after a burst would make every
                                        -- later `next` walk its empty slots)
    order = {},                         -- the keys of the records in the global view, sorted,
    order_new = {},                     -- and those that came since, unsorted
    order_gone = 0,                     -- how many keys of `order` and `order_new` are of records gone
    running = {},                       -- key -> the entry of which_children(sup, "global") for the
                                        -- copy running that child (or the list of its copies' entries,
                                        -- by node) as pg said when the record was last settled

    -- the join wait (join_wait.lua)
    waiting = {},                       -- node (or "$connect host:port") -> {deadline =, probe = ref}
    probes = {},                        -- monitor ref of a keeper probe -> the node it probes
    ring_askers = {},                   -- supervisors that asked for this node's ring, answered once no
                                        -- child is starting here (join_wait.answer_rings)

    -- the repair pass
    next_sync = nil,                    -- when the next repair pass runs (pogo.now() ms)
    sweep_after = nil,                  -- the key the sweep in progress looked at last (it goes on
                                        -- after it in `order`), or nil: the next pass begins a sweep
    passes = 0,                         -- repair passes so far (each sweep_passes-th reads pg again)
  }
end

--- The record of child id `id`, created on first sight (a request for it,
-- its child group in pg, or handoff data). A caller that creates one
-- touches it (`touch`) in the same callback, so that it enters the global
-- view's order (tally.lua), which the repair pass's sweep goes through.
-- @tparam table st
-- @param id the child id
-- @tparam[opt] string key its canonical encoding, if known
-- @treturn table the record
function M.child(st, id, key)
  key = key or encode(id)
  local c = st.children[key]
  if not c then
    -- every node holds one per child id of the cluster: the constructor names
    -- only the fields set now (a field named nil here would still get a slot:
    -- ten names make sixteen slots, 440 bytes; the usual seven fields set
    -- later fit in eight, 248 bytes)
    c = {
      id = id,         -- the child id, as first seen
      key = key,       -- its canonical encoding: its key in st.children
      -- requests:     the requests for this id (requests.each): nil, the request, or
      --               uid -> request when there are more, after a conflict or while a
      --               terminated one is let go (requests.lua)
      -- owner:        the ring's owner when it was last looked at (placement.lua)
      -- last_node:    the node that last started it (pg): a start elsewhere is a move
      -- ran_uid:      the request that counted when its child group was last seen joined or
      --               left: a temporary child of that request has run (children.lua)
      -- proc:         the child process this node supervises for it, or nil (children.lua)
      -- tally:        what it adds to the global view, nil while not in it (tally.lua)
      -- handoff:      the data its old instance handed over, for its next start here (handoff.lua),
      -- handoff_from: and the node of that instance,
      -- handoff_skip: and the set of the stopping nodes the data went through (nil: none)
    }
    st.children[key] = c
  end
  return c
end

-- Take record `c` out of the `owned` set of its noted owner.
local function unlist_owner(st, c)
  local set = st.owned[c.owner or false]
  if set then set[c] = nil end
end

--- Note `owner` (a node, or nil) as record `c`'s owner, in the record and
-- in `owned`.
-- @tparam table st
-- @tparam table c
-- @tparam ?string owner
function M.note_owner(st, c, owner)
  if c.owner == owner and owner ~= nil then return end
  unlist_owner(st, c)
  local owned = st.owned
  c.owner = owner
  local set = owned[owner or false]
  if not set then
    set = {}
    owned[owner or false] = set
  end
  set[c] = true
end

--- Go through the deadline table `tbl` (key -> a value whose deadline is
-- `due_of(value)`): `on_due(key, value)` for those due by `t` (it may remove
-- them); the earliest deadline of the others (nil: none), for a `*_next`
-- field of the state (the supervisor's next timeout).
-- @tparam table tbl
-- @tparam number t
-- @tparam function due_of
-- @tparam function on_due
-- @treturn ?number
function M.sweep_due(tbl, t, due_of, on_due)
  local nxt
  for k, v in pairs(tbl) do
    local due = due_of(v)
    if due <= t then
      on_due(k, v)
    elseif nxt == nil or due < nxt then
      nxt = due
    end
  end
  return nxt
end

--- Have record `c` reconciled once the mailbox is drained.
-- @tparam table st
-- @tparam table c
function M.mark(st, c)
  st.dirty[c] = true
end

--- Have record `c`'s part of the global view looked at again at the end of
-- the callback (its request that counts, or its running copies, may have changed).
-- @tparam table st
-- @tparam table c
function M.touch(st, c)
  local touched = st.touched
  touched[#touched + 1] = c
end

--- Forget record `c` when it holds nothing any more: no request, no child
-- process here, no handoff data (which may come before this node has heard
-- of the child), and no copy running anywhere (whose node would be the
-- `last_node` of a later start).
-- @tparam table st
-- @tparam table c
function M.release(st, c)
  if c.requests == nil and c.proc == nil and c.handoff == nil and st.children[c.key] == c
      and #pg.get_members(st.scope, { "child", c.id }) == 0 then
    st.children[c.key] = nil
    st.unsettled[c] = nil
    unlist_owner(st, c)
    M.touch(st, c)
  end
end

return M
