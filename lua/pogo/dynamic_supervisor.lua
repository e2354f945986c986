--- The distributed supervisor: Pogo's algorithm over `pogo.pg` and `pogo.ring`.
--
-- Each node runs `start_link{name =, scope =, ...}`; the supervisors of one scope
-- form one distributed supervisor. `start_child` on any node is a request: the
-- spec is replicated to every node of the scope and the node that the ring
-- assigns to the child id starts it. Children move when nodes come and go, and
-- `which_children(sup, "global")` shows every child from any node.
--
-- Cluster state lives in pg groups of the scope:
--
-- * `{"sup", weight, nodes}`: the supervisor process of every node, with its
--   `weight` and `nodes` options, from which every node builds the same ring;
-- * `{"spec", uid, spec}`: one request (`uid` names it), held by the keeper (an
--   idle process that outlives a crash of the supervisor process) of the node
--   that made it; every node learns it from pg. When no node holds it any more
--   (that node died, or its supervisor was stopped) the child's owner takes it
--   over, so a spec survives as long as any node of the scope does;
-- * `{"child", id}`: the pid running the child;
-- * `{"term", uid}`: a termination marker, held by the keeper of the node that
--   asked, until no node holds the spec;
-- * `{"lost", uid}`: the temporary child of that request ran on a node that
--   went: no node starts it, but a copy that still runs (beyond a netsplit)
--   runs on, and the marker is withdrawn once that copy is seen again.
--
-- **The algorithm.** Pogo's supervisor, every `sync_interval`, reads every
-- spec from pg, builds the ring from the supervisors' group, and for each
-- spec starts the child if the ring assigns it to this node and it runs
-- nowhere here, or stops it if it runs here and belongs elsewhere; then it
-- stops the local children whose spec is gone. This supervisor makes the same
-- decision (`reconcile`, whose steps are named below) for one child id at a
-- time, as soon as something about that id changes: a pg notification, a
-- child's exit, a node coming or going. It reads its whole mailbox first and
-- reconciles once the mailbox is drained (`handle_drained`), so it acts on one
-- consistent view. `sync_interval` is only a periodic repair pass over a
-- bounded slice of the ids, whose cost does not grow with their number.
--
-- While nodes join, a node starts nothing until it knows which children they
-- run (see `join_wait`), so a joining node never starts a child that an old
-- owner still runs: the old owner stops it first and the new owner starts it
-- on the pg leave. When a node dies its children start on their new owners at
-- once.
--
-- **Placement controls** (see `placement`): a child may be pinned to a node
-- (`node =` in its spec, or `start_child(sup, spec, node)`); `start_link{nodes
-- = {...}}` limits the ring to those nodes and `weight = n` gives a node n
-- times the share; `rebalance` moves every child to its owner now. All of them
-- are part of what pg replicates, so every node computes the same owners.
--
-- **Nothing waits on the supervisor process, and it waits on nobody.** It never
-- runs user code: children start in starter processes (a small pool,
-- `starter`), and the listeners run in a notifier process (`events`). The read functions
-- (`whereis`, `which_children`, `count_children`, `node_for`, `mine`, `nodes`)
-- read its state directly, from the calling process (`views`); `start_child`,
-- `terminate_child` and `rebalance` are requests that it answers at once. So a
-- child's start function, its `init` and a listener may call all of them.
--
-- **The parts**, one concept each (under `pogo.dynamic_supervisor.`):
--
-- * `state`: the supervisor's state, every field commented, and the one
--   record this node keeps per child id;
-- * `requests`: spec groups, termination and lost markers, and the keeper;
-- * `placement`: the ring, owners (pins, `nodes`, weights), where children
--   run, duplicates, rebalance;
-- * `join_wait`: the wait for joining nodes;
-- * `children`: the child processes this node runs (start, stop, exit,
--   backoff, restart types);
-- * `starter`: the process that runs a child's start function, and the
--   hand-over of the child to the supervisor;
-- * `handoff`: the state a moving child hands to its next instance, and to
--   the copy that stays after a netsplit;
-- * `events`: listeners (the notifier) and log lines;
-- * `tally`: the global view (counts and the order of the ids), kept as
--   records change;
-- * `views`: the answers that any process of the node reads from the state.
--
-- This module holds the public API and the `pogo.server` callbacks of the
-- supervisor process, which dispatch the messages to those parts, and
-- `reconcile`.
-- @module pogo.dynamic_supervisor
local pogo = require "pogo"
local server = require "pogo.server"
local pg = require "pogo.pg"
local child_spec = require "pogo.child_spec"
local state = require "pogo.dynamic_supervisor.state"
local requests = require "pogo.dynamic_supervisor.requests"
local placement = require "pogo.dynamic_supervisor.placement"
local join_wait = require "pogo.dynamic_supervisor.join_wait"
local children = require "pogo.dynamic_supervisor.children"
local events = require "pogo.dynamic_supervisor.events"
local views = require "pogo.dynamic_supervisor.views"
local tally = require "pogo.dynamic_supervisor.tally"
local handoff = require "pogo.dynamic_supervisor.handoff"
local proc_lib = require "pogo.proc_lib"
local registry = require "pogo.registry"
local shutdown = require "pogo.shutdown"

local encode = pogo.core.encode

local M = {}

local now = pogo.now

-- ---- reconcile: Pogo's handle_info(:sync), for one child id ----

-- A child of ours (reconcile, step 5). Stop it when it was started from a
-- request that lost to another with a different spec (the same spec under
-- the request that counts is kept running); when it belongs elsewhere and
-- moves (Pogo: "running on current node, but should run on another:
-- terminate it here"; its owner starts it on the pg leave; see
-- placement.moves); or when it runs elsewhere too (a healed netsplit) and the
-- other copy is the one that stays (a child named in pogo.registry: the
-- registry decides). A child on its way out, still starting
-- (it is looked at again once handed over), or waiting for its restart, is
-- left to that.
local function keep_or_stop(st, c, req, owner)
  local proc = c.proc
  local status = proc.status
  if status == "starting" then proc.recheck = true end -- looked at again once handed over
  if status == "stopping" or status == "starting" then return end
  if proc.request.uid ~= req.uid then
    if encode(proc.request.spec) ~= encode(req.spec) then return children.stop(st, c) end
    proc.request = req
  end
  if status ~= "running" then return end
  -- Two copies of a child named in pogo.registry (a healed netsplit): the
  -- registry settles the conflict over its name (the registration made first
  -- stays, the other copy hands it its state and ends), and the copy that
  -- stays then moves to its owner, its state with it. (Deciding here too could
  -- end both copies: the registry's tie-break and this one's may differ.)
  local named = registry.holds(proc.pid)
  if named and placement.running_elsewhere(st, c) then return end
  if owner ~= st.me and (placement.moves(st, req, owner) or not st.ring_nodes[st.me]) then
    children.stop(st, c, handoff.dest(st, owner)) -- it moves: its state goes with it
    st.unsettled[c] = true
  elseif not named then
    local elsewhere = placement.running_elsewhere(st, c)
    if elsewhere and not placement.keeps_copy(st, owner, elsewhere) then
      children.stop(st, c, handoff.dest(st, elsewhere)) -- to the copy that stays: resolve_conflict
    end
  end
end

-- It belongs here and does not run here (reconcile, step 6; Pogo: "should
-- run on current node, but not running yet: start it"), once no other node
-- runs it (its old owner stops it first) and no joining node is waited for.
-- A temporary child that has run and runs nowhere any more is over: it is
-- never started again. When it ran here (this node knows its copy is gone:
-- its supervisor restarted) or on a node that stopped in order (its
-- nodedown said "shutdown") it is terminated; when it ran on a node that
-- went otherwise, it is marked lost (requests.lua), which keeps every node
-- from starting it but stops no copy: beyond a netsplit it may still run.
local function start_here(st, c, req)
  if placement.running_elsewhere(st, c) or not join_wait.settled(st) or handoff.awaited(st, c) then
    st.unsettled[c] = true
  elseif req.spec.restart == "temporary" and (children.has_run(st, c, req) or requests.lost(st, req.uid)) then
    local node = c.last_node
    if st.memory.ran[req.uid] or node == st.me or st.down_reason[node] == "shutdown" then
      requests.mark_terminated(st, req.uid)
      state.mark(st, c)
    else
      requests.mark_lost(st, req.uid)
    end
  else
    children.start(st, c, req)
  end
end

-- What should this node do about child id `c`? The decisions of Pogo's sync,
-- for one id, in order.
local function reconcile(st, c)
  st.unsettled[c] = nil
  local req = requests.settle(st, c)      -- 1. the request that counts; the others are let go
  if not req then                         -- 2. Pogo: "terminate children whose spec is gone"
    children.stop(st, c)
    return state.release(st, c)
  end
  local owner = placement.owner(st, c, req) -- 3. its pin, or where the ring puts it (Pogo: key_to_node)
  requests.take_over(st, req, owner)      -- 4. a request no node holds is held by its owner
  if c.proc then                          -- 5. a child of ours: keep it, or stop it
    keep_or_stop(st, c, req, owner)
  elseif owner == st.me then              -- 6. it belongs here: start it
    start_here(st, c, req)
  elseif c.handoff ~= nil then            -- (handoff data came for it, and its owner changed since)
    handoff.pass_on(st, c, owner)
  end
end

local function reconcile_dirty(st)
  if st.all_dirty then
    st.all_dirty = false
    st.dirty = {}
    for _, c in pairs(st.children) do reconcile(st, c) end
  end
  while true do
    local batch = st.dirty
    if next(batch) == nil then return end
    st.dirty, st.spare = st.spare, batch -- what reconciling marks waits for the next round
    local n = 0
    for c in pairs(batch) do
      batch[c] = nil
      n = n + 1
      reconcile(st, c)
    end
    -- a set emptied after a burst keeps its slots, and `next` would walk them
    -- on every later pass: a fresh one instead
    if n > 64 then st.spare = {} end
  end
end

-- Read pg again (at start, and every sweep_passes repair passes).
local function rescan(st)
  local sups = {}
  requests.rescan(st, function(group)
    if group[1] == "sup" then sups[#sups + 1] = group end
  end)
  placement.rescan(st, sups)
end

-- The most ids a repair pass looks at (beyond those waiting for something):
-- with more than sweep_passes times as many, a sweep takes more passes, and
-- an idle node's cost stays flat (100,000 ids in slices of n / 12 cost about
-- 1.5 % of a core at the default interval; in slices of 2,000, 0.4 %, as a
-- reconcile there costs 10 µs, its tables being that big; in slices of
-- 1,000, 0.2 %, and a full sweep every 100 passes, 500 s).
local SWEEP_SLICE = 1000

-- The index of the first key of the sorted `order` after `key` (#order + 1
-- if none): a binary search.
local function after(order, key)
  local lo, hi = 1, #order + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if order[mid] <= key then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- The periodic repair pass: the ids still waiting for something, plus a
-- bounded slice of all ids (a full sweep every `sweep_passes` passes, or
-- more with more than `sweep_passes` * SWEEP_SLICE ids; pg is read again
-- every `sweep_passes` sweeps). The sweep goes through the order of the
-- global view (tally.lua: every record's key, sorted, tidied first), from
-- the key after the last one it looked at, so it keeps no list of its own:
-- building one of every key at the start of each sweep cost 40 ms at
-- 100,000 children, in one pass. Its cost does not grow with the number of
-- groups. A record of the slice that knows of no copy running though its
-- child group has members (a join this process never saw) is repaired as if
-- that join came now (placement.repair_running).
local function repair_pass(st, t)
  st.next_sync = t + st.sync_interval
  -- settle what the last messages changed first: a rescan must not forget a
  -- request whose holder just went away before its owner takes it over
  reconcile_dirty(st)
  for c in pairs(st.unsettled) do state.mark(st, c) end
  if tally.untidy(st) then tally.compact(st) end
  local order = st.order
  local n = #order
  local i = st.sweep_after and after(order, st.sweep_after) or n + 1
  if i > n then -- the sweep is over (or none began): the next one
    st.passes = st.passes + 1
    if st.passes % st.sweep_passes == 0 then rescan(st) end
    i = 1
  end
  local last = math.min(n, i + math.min(SWEEP_SLICE, math.max(1, math.ceil(n / st.sweep_passes))) - 1)
  local records = st.children
  for k = i, last do
    local c = records[order[k]]
    if c then
      placement.repair_running(st, c) -- a join it never saw (its view of where the child runs)
      state.mark(st, c)
    end
  end
  st.sweep_after = order[last]
  requests.expire_markers(st, t)
end

-- ---- answers to calls ----

-- The answers to calls: {value, error}. Requests (start_child,
-- terminate_child, rebalance) are served by the supervisor process only; the
-- views too when the caller is on another node, or could not read them here.
local OK = { true } -- the common answer, shared (callers only read it)
local answers = {
  start_child = function(st, spec)
    local ok, err = requests.request(st, spec)
    if ok then return OK end
    return { nil, err }
  end,
  terminate_child = function(st, id)
    if requests.terminate(st, id) then return OK end
    return { nil, "not found" }
  end,
  rebalance = function(st)
    placement.request_rebalance(st)
    return OK
  end,
  scope = function(st) return { st.scope } end,
}
for _, name in ipairs { "which_children", "count_children", "whereis", "node_for", "mine", "nodes", "specs" } do
  local f = views[name]
  answers[name] = function(st, arg) return { f(st, arg) } end
end

-- The answers while the supervisor stops its children (Server.terminate):
-- the views and `scope` as ever, read from its state; the requests refused,
-- `{nil, "stopping"}` (it leaves the ring and gives its requests up: what it
-- recorded now would go with it). `terminate_child` then asks the other
-- supervisors of the scope (M.terminate_child).
local STOPPING = { nil, "stopping" }
local function answer_stopping(st, req)
  local name = type(req) == "table" and req[1]
  if name == "terminate_child" then
    local ok, key = pcall(encode, req[2])
    local c = ok and st.children[key]
    if not (c and requests.active(st, c)) then return { nil, "not found" } end
    return STOPPING
  end
  if name == "start_child" or name == "rebalance" then return STOPPING end
  local answer = answers[name]
  if not answer then return { nil, "unknown request" } end
  local ok, reply = pcall(answer, st, req[2])
  return ok and reply or { nil, "bad request: " .. tostring(reply) }
end

-- ---- the supervisor process (pogo.server callbacks) ----

local Server = {}

function Server.init(arg)
  local opts, specs = arg[1], arg[2]
  shutdown.supervisor_started()
  local st = state.new(opts)
  pg.start(st.scope)
  requests.adopt_keeper(st)
  events.start(st)
  local ref, snapshot = pg.monitor_scope(st.scope)
  st.pg_ref = ref
  pogo.monitor_nodes(true)
  join_wait.boot(st)
  pg.join(st.scope, placement.sup_group(st), st.pid)
  rescan(st)
  -- the children already running (after a restart of this process): the
  -- joins it would have been told of, now that it knows the requests
  placement.existing_children(st, snapshot)
  for _, spec in ipairs(specs) do
    local ok, err = requests.request(st, spec)
    if not ok then events.log(st, "debug", "initial child %s: %s", events.describe(spec.id), tostring(err)) end
  end
  st.next_sync = now() + st.sync_interval
  tally.settle(st)
  views.register(st)
  return st
end

-- Every callback that changes the state makes `st.version` odd while it runs
-- (see views.lua).
function Server.handle_call(req, _, st)
  local answer = type(req) == "table" and answers[req[1]]
  if not answer then return { nil, "unknown request" }, st end
  st.version = st.version + 1
  -- a bad request (say, an id that cannot be encoded) is answered, not fatal
  local ok, reply = pcall(answer, st, req[2])
  tally.settle(st)
  st.version = st.version + 1
  return ok and reply or { nil, "bad request: " .. tostring(reply) }, st
end

-- A pg notification {"pg", ref, "join" | "leave", group, pids}.
local function on_pg(st, kind, group, pids)
  if type(group) ~= "table" then return end
  local tag = group[1]
  if tag == "sup" then
    placement.on_sup(st, kind, group, pids)
  elseif tag == "spec" then
    requests.on_spec(st, kind, group)
  elseif tag == "term" then
    requests.on_marker(st, kind, group)
  elseif tag == "lost" then
    requests.on_lost(st, kind, group)
  elseif tag == "child" then
    placement.on_child(st, kind, group, pids)
    if kind == "join" then handoff.started_elsewhere(st, st.children[encode(group[2])]) end
  end
end

-- Each message notes what changed (the records to reconcile); handle_drained acts.
local function info(msg, st)
  local tag = type(msg) == "table" and msg[1]
  if tag == "pg" and msg[2] == st.pg_ref then
    on_pg(st, msg[3], msg[4], msg[5])
  elseif tag == "$dsup_start" then
    children.started(st, msg[2], msg[3], msg[4], msg[5], msg[6])
  elseif tag == "$handoff_data" then
    handoff.received(st, msg[2], msg[3], msg[4], msg[5], msg[6], msg[7], msg[8])
  elseif tag == "$handoff_ack" then
    handoff.on_answer(st, msg)
  elseif tag == "$handoff_coming" then
    handoff.expect(st, msg[2])
  elseif tag == "EXIT" then
    local c = st.by_pid[msg[2]]
    if c and c.proc and c.proc.pid == msg[2] then children.exit_signal(st, c, msg[3]) end
  elseif tag == "DOWN" then
    local ref = msg[2]
    if ref == st.keeper_ref then
      requests.keeper_down(st)
    elseif st.passing.refs[ref] then -- the owner that handoff data was passed on to went
      handoff.on_answer(st, msg)
    elseif st.probes[ref] then
      join_wait.probe_down(st, ref, msg[4])
    elseif not children.starter_down(st, ref, msg[4]) then
      events.notifier_down(st, ref, msg[4])
    end
  elseif tag == "$dsup_died" then
    children.died(st, msg[2], msg[3])
  elseif tag == "$dsup_ring" then
    join_wait.answer_ring(st, msg[2])
  elseif tag == "$dsup_ring_reply" then
    join_wait.peer_ring(st, msg[2], msg[3])
  elseif tag == "$dsup_connected" then
    join_wait.connected(st, msg[2], msg[3])
  elseif tag == "$dsup_rebalance" then
    placement.rebalance(st, children)
  elseif tag == "nodeup" then
    st.down_reason[msg[2]] = nil -- (a reason is of the node's last going, while it is away)
    join_wait.node_up(st, msg[2])
  elseif tag == "nodedown" then
    join_wait.clear(st, msg[2])
    st.down_reason[msg[2]] = msg[3]
    st.last_down = now()
  end
end

function Server.handle_info(msg, st)
  st.version = st.version + 1
  info(msg, st)
  tally.settle(st)
  st.version = st.version + 1
  return st
end

-- The mailbox is drained: act on one consistent view.
function Server.handle_drained(st)
  st.version = st.version + 1
  if st.ring_stale then placement.update_ring(st) end -- (the next change it waited for was taken otherwise)
  children.handed_over(st) -- an EXIT "noproc" of a hand-over has been read by now
  local t = now()
  children.due(st, t)     -- restarts and kills whose time has come
  local passed = handoff.deadline(st) -- answers of owners that data was passed on to, given up
  if passed and passed <= t then handoff.give_up_passing(st) end
  handoff.expire_coming(st, t) -- data said to come that did not: those children start without it
  requests.due_unheld(st, t)   -- requests held by no node for a while: any node that knows them takes them
  join_wait.expire(st, t) -- joining nodes that took longer than settle_ms
  t = now()
  if t >= st.next_sync then repair_pass(st, t) end
  requests.expire_gone(st, t) -- tombstones done with: as soon as they are (it stops at the first that is not)
  reconcile_dirty(st)
  children.launch(st)        -- the starts decided by now go to starters
  -- peers that asked which nodes we know, once nothing starts here
  if #st.ring_askers > 0 then join_wait.answer_rings(st, children.starting(st, now())) end
  tally.settle(st)
  st.version = st.version + 1
  return st
end

-- Wake up for the next retry, kill, end of a join wait or repair pass.
function Server.timeout(st)
  local soonest = st.next_sync
  local d = children.next_deadline(st)
  if d and d < soonest then soonest = d end
  d = join_wait.next_deadline(st)
  if d and d < soonest then soonest = d end
  d = handoff.deadline(st)
  if d and d < soonest then soonest = d end
  d = st.coming_next
  if d and d < soonest then soonest = d end
  d = st.unheld_next
  if d and d < soonest then soonest = d end
  return soonest - now()
end

-- A stop (the parent's exit, server.stop, pogo.stop) leaves the ring first,
-- so every node computes the new owners at once; then it shuts the children
-- down (those that take part in the handoff hand their state to their new
-- owners), each of which starts on its new owner as soon as it has stopped here
-- (its pg group is left); then it gives this node's requests up, and their
-- owners take them over. Until its children have stopped, the views still
-- read its state and calls are answered (a child's `terminate` may call its
-- supervisor: `answer_stopping`). After a crash the children go down through
-- their links, and the keeper keeps the requests for the supervisor's restart.
function Server.terminate(reason, st)
  if server.is_crash(reason) then
    views.unregister(st)
    return
  end
  st.version = st.version + 1 -- (the state changes: see views.lua)
  pg.demonitor(st.pg_ref) -- no more notes: the supervisor acts no more
  pogo.monitor_nodes(false)
  -- (one step: the data this node holds for children it was to start reaches
  -- their new owners before the leave that makes them their owners)
  pogo.core.critical_enter()
  st.stopping = true
  pg.leave(st.scope, placement.sup_group(st), st.pid)
  -- the owners without this node: each moving child hands its state to its new owner
  st.ring:remove(st.me)
  st.ring_nodes[st.me] = nil
  handoff.pass_held(st)
  tally.settle(st)
  st.version = st.version + 1
  pogo.core.critical_leave()
  children.shutdown_all(st, function(c) return handoff.dest_on_stop(st, c) end,
    function(req) return answer_stopping(st, req) end)
  views.unregister(st)
  requests.give_up(st)
end

-- ---- API ----

-- The options of start_link, and what each must be (nil: anything; checked elsewhere).
local function non_negative(v) return type(v) == "number" and v >= 0 end
-- The shortest sync_interval: a repair pass every millisecond cost an idle
-- node 9 % of a core with 200 children (every 0 ms, 20 %).
local MIN_SYNC_MS = 100
-- The most ring points of one node (vnodes * weight): a ring of 8 M points
-- took 1.25 s to build, on every node.
local MAX_POINTS = 1 << 20

local OPTIONS = {
  name = false, scope = false, children = false, redistribute = false, listeners = false,
  sync_interval = function(v) return type(v) == "number" and v >= MIN_SYNC_MS end,
  intensity = non_negative, period_ms = non_negative,
  max_backoff_ms = non_negative, min_backoff_ms = non_negative, settle_ms = non_negative,
  tombstone_ms = non_negative, sweep_passes = function(v) return math.type(v) == "integer" and v >= 1 end,
  vnodes = function(v) return math.type(v) == "integer" and v >= 1 end,
  log = function(v) return type(v) == "function" end,
  weight = placement.valid_weight,
  nodes = function(v)
    if type(v) ~= "table" or next(v) == nil then return false end -- ({}: a ring of no node, for the cluster)
    for i, node in pairs(v) do
      if math.type(i) ~= "integer" or type(node) ~= "string" or node == "" then return false end
    end
    return true
  end,
}

local function check_options(opts)
  local unknown
  for k in pairs(opts) do
    if OPTIONS[k] == nil and (unknown == nil or tostring(k) < unknown) then unknown = tostring(k) end
  end
  if unknown then return "unknown option: " .. unknown end
  if opts.name == nil and opts.scope == nil then return "name or scope required" end
  if opts.scope ~= nil and type(opts.scope) ~= "string" then return "scope must be a string" end
  if opts.name ~= nil and type(opts.name) ~= "string" then return "name must be a string" end
  if opts.redistribute ~= nil and opts.redistribute ~= "active" and opts.redistribute ~= "on_failure" then
    return "redistribute must be \"active\" or \"on_failure\""
  end
  for k, ok in pairs(OPTIONS) do
    if ok and opts[k] ~= nil and not ok(opts[k]) then
      if k == "nodes" then return "nodes must be an array of node names, not empty" end
      if k == "sync_interval" then return "sync_interval must be a number of ms, at least " .. MIN_SYNC_MS end
      if k == "log" then return "log must be a function" end
      if k == "weight" then return "weight must be a positive number, at most " .. placement.MAX_WEIGHT end
      return k .. " must be a positive number"
    end
  end
  if (opts.vnodes or 2048) * (opts.weight or 1) > MAX_POINTS then
    return "vnodes * weight must be at most " .. MAX_POINTS .. " ring points"
  end
  return events.check(opts.listeners)
end

-- A normalised spec with a valid pin (`node`); `encodable` also checks that
-- it can be replicated (the supervisor checks that for start_child).
local function replicable(spec, encodable)
  if spec.node ~= nil and (type(spec.node) ~= "string" or spec.node == "") then
    return nil, "invalid child spec: node must be a node name"
  end
  if encodable and not pcall(encode, spec) then return nil, requests.invalid(spec) end
  return spec
end

--- Start this node's part of a distributed supervisor, linked to the caller.
-- @tparam table opts
--
-- * `name` (registered locally, and the default scope), `scope`;
-- * `children`: specs requested at start (again at each restart);
-- * `nodes`: the node names the ring holds (give every node the same list;
--   where lists differ a node is in the ring only if every list names it; a
--   node without the option restricts nothing). The other nodes of the scope
--   may request children and look, but run none;
-- * `weight` (1): this node's share of the ring, relative to the others';
-- * `redistribute`: `"active"` (default: running children move to their new
--   owner when the ring changes) or `"on_failure"` (they move only when their
--   node goes, or on `rebalance`; pinned children still go back to their node);
-- * `listeners`: tables with optional `node_up`, `node_down`, `child_started`,
--   `child_stopped`, `child_moved` functions, run in a notifier process (see
--   the module text);
-- * `intensity`/`period_ms` (3 in 5000 ms: restarts of one child before it
--   backs off), `min_backoff_ms` (50), `max_backoff_ms` (5000);
-- * `settle_ms` (1000: how long a connecting node may take to show its
--   supervisor), `sync_interval` (5000 ms, a repair pass), `sweep_passes`
--   (12: repair passes per sweep over every record, each looking at 1,000
--   records at most), `tombstone_ms` (600000: how long a terminated request
--   is remembered, and a lost temporary child waited for; see
--   `pogo.dynamic_supervisor.requests`), `vnodes` (the ring's, the same on every node);
-- * `log`: function(level, msg) instead of `pogo.log` (it gets the
--   supervisor reports too, as their one-line message, without their fields).
--
-- It reports what happens to its children as OTP's supervisor does (see
-- `pogo.supervisor_report`): a crash, a restart, a failed start, and a child
-- beyond its restart intensity (which backs off: the supervisor never gives
-- up). Started outside any supervision tree, it is the root of one, which
-- `pogo.stop` terminates: it leaves the ring, stops its children, gives its
-- requests to their owners (see `pogo.shutdown`).
--
-- @return pid, or nil and the reason (`"unknown option: <name>"`, ...)
function M.start_link(opts)
  if type(opts) ~= "table" then
    error("pogo.dynamic_supervisor.start_link: opts must be a table, got " .. type(opts), 2)
  end
  local bad = check_options(opts)
  if bad then return nil, bad end
  local specs = {}
  for i, c in ipairs(opts.children or {}) do
    local spec, err = child_spec.normalize(c)
    if spec then spec, err = replicable(spec, true) end
    if not spec then return nil, err end
    specs[i] = spec
  end
  return server.start_link(Server, { opts, specs }, { name = opts.name, trap_exit = true })
end

local function call(sup, req, timeout)
  local r = pogo.call(sup, req, timeout or 30000)
  return r[1], r[2]
end

-- A view read here from the supervisor's state, else asked of it.
local function view(sup, name, arg)
  local st = views.state_of(sup)
  if st then
    local ok, a, b = views.read(st, views[name], arg)
    if ok then return a, b end
  end
  return call(sup, { name, arg })
end

--- Request a child anywhere in the cluster: it starts on its owner (the node
-- it is pinned to while that node is in the ring, else the ring's node for its
-- id). Returns once the request is recorded on this node, which replicates it;
-- it does not wait for the child to start.
--
-- The same spec requested again is `true`; another spec for an id this node
-- knows is refused. Two nodes that request different specs for one id before
-- either has learned of the other's both get `true`: every node then keeps the
-- same one (the request with the lowest uid: node name, incarnation, sequence),
-- drops the other everywhere, and the node whose spec lost logs a warning.
-- @param sup the local supervisor (name or pid)
-- @param spec a child spec or shorthand; `node = "name@host:port"` pins it
-- @tparam[opt] string node pin the child to this node (sets `spec.node`)
-- @return true, or nil and `"invalid child spec: <why>"` (never replicated),
--   `"already started: <id>"` or `"stopping"` (asked while the supervisor
--   stops its children, from a child's `terminate`, say: nothing is recorded)
function M.start_child(sup, spec, node)
  local s, err = child_spec.normalize(spec)
  if not s then return nil, err end
  if node ~= nil then s.node = node end
  s, err = replicable(s, views.state_of(sup) == nil)
  if not s then return nil, err end
  return call(sup, { "start_child", s })
end

-- Is the caller a listener, or a child of `st` in its start (its start
-- function, or a process that function started, such as a server in init)?
local function in_listener_or_start(st)
  if events.in_listener(st) then return true end
  local me = pogo.self()
  if st.starters[me] then return true end
  return proc_lib.parent() == st.pid and st.by_pid[me] == nil
end

-- How long terminate_child waits for the other supervisors of the scope when
-- its own has not heard of the id.
local ASK_OTHERS_MS = 2000
local ASK_RETRY_MS = 10 -- ... asking again this often one that has not heard of it yet

-- `terminate_child` of an id that this node's supervisor has not heard of:
-- its request may not have reached this node yet (it was made a moment ago
-- on another, or this node is cut off from that one). Ask every other
-- supervisor of the scope at once (a process each); true if one of them knew
-- it, and so marked it terminated for the whole cluster. Also when this
-- node's supervisor is stopping (`stopping`: it knows the id, but records
-- nothing any more): then, when every other supervisor is stopping too or
-- gone (or there is none), no supervisor is left to run the child again once
-- it has stopped here: true as well; else nil and "stopping". (A supervisor
-- that answers "not found" then is asked again until ASK_OTHERS_MS: the
-- request is in pg, and its notification may reach that supervisor after
-- our call, which goes to it directly.)
local function terminate_elsewhere(sup, id, stopping)
  local failed = stopping and "stopping" or "not found"
  local st = views.state_of(sup)
  if not st then return nil, failed end
  local others = {}
  for node, s in pairs(st.sups) do
    if node ~= st.me then others[#others + 1] = s.pid end
  end
  local me, tag = pogo.self(), pogo.make_ref()
  local until_ms = now() + ASK_OTHERS_MS
  for _, pid in ipairs(others) do
    pogo.spawn(function()
      local ok, r = pcall(pogo.call, pid, { "terminate_child", id }, ASK_OTHERS_MS)
      -- (this node knows the request: one that has not heard of it yet will,
      -- as its pg notification may reach it after our call)
      while stopping and ok and type(r) == "table" and r[2] == "not found" and now() + ASK_RETRY_MS < until_ms do
        pogo.sleep(ASK_RETRY_MS)
        ok, r = pcall(pogo.call, pid, { "terminate_child", id }, math.max(1, until_ms - now()))
      end
      local done = ok and type(r) == "table" and r[1] == true
      -- (a supervisor that is gone, or stopping, runs nothing any more)
      local out = not ok and (tostring(r):find("^noproc") or tostring(r):find("^noconnection"))
        or ok and type(r) == "table" and r[2] == "stopping"
      pogo.send(me, { tag, done, out })
    end)
  end
  local found, all_out, answered = false, true, 0
  local deadline = now() + ASK_OTHERS_MS + 500
  for _ = 1, #others do
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == tag end,
      math.max(0, deadline - now()))
    if not m then break end
    answered = answered + 1
    found = found or m[2]
    all_out = all_out and m[3] and true
  end
  while pogo.receive(function(x) return type(x) == "table" and x[1] == tag end, 0) do end
  if found or (stopping and all_out and answered == #others) then return true end
  return nil, failed
end

--- Terminate a child wherever it runs, from any node, and forget its spec.
--
-- Waits (up to `timeout_ms`, default 5000) until no copy runs any more,
-- except the caller itself (a child that terminates its own id gets its
-- shutdown signal as any other). Called from a listener, or from a child's
-- start (its start function or `init`), it does not wait for the copies to
-- stop: it returns once the termination is recorded on this node, from which
-- every node stops its copy (waiting there would hold up the node's later
-- events, or that child's start, for as long as the other child's shutdown).
-- An id this node has not heard of (its request was made a moment ago on
-- another node, or this node is cut off from that one) is asked of the other
-- supervisors of the scope: if one knows it, it marks it terminated. So is an
-- id asked of a supervisor that is stopping its children (from a child's
-- `terminate`, say): it records nothing any more, and the termination is
-- another's to record; with no other supervisor left (or all stopping), the
-- child stops with the node for good, and the answer is true too.
-- @param sup the local supervisor (name or pid)
-- @param id the child id
-- @tparam[opt=5000] integer timeout_ms
-- @return true, or nil and "not found" (no supervisor of the scope knows it)
--   or "stopping" (this one is stopping, and no other could record it)
function M.terminate_child(sup, id, timeout_ms)
  local ok, err = call(sup, { "terminate_child", id })
  if not ok and (err == "not found" or err == "stopping") then
    ok, err = terminate_elsewhere(sup, id, err == "stopping")
  end
  if not ok then return nil, err end
  local st = views.state_of(sup)
  if st and in_listener_or_start(st) then return true end
  local deadline = now() + (timeout_ms or 5000)
  local scope = st and st.scope or call(sup, { "scope" })
  local group = { "child", id }
  local me = pogo.self()
  local function others_run()
    for _, pid in ipairs(pg.get_members(scope, group)) do
      if pid ~= me then return true end
    end
    return false
  end
  local ref = pg.monitor(scope, group)
  local function is_note(m) return type(m) == "table" and m[1] == "pg" and m[2] == ref end
  while others_run() and now() < deadline do
    pogo.receive(is_note, math.max(1, deadline - now()))
  end
  pg.demonitor(ref)
  while pogo.receive(is_note, 0) do end
  return true
end

--- Move every child to its owner now, cluster-wide (from any node): each
-- supervisor stops the children it runs that belong elsewhere, and their
-- owners start them (a `pogo.server` child with `handoff` takes its state
-- along: see `pogo.dynamic_supervisor.handoff`). Meant for `redistribute = "on_failure"`, where children
-- stay put when nodes join. Temporary children never move. Returns once every
-- supervisor has been asked, without waiting for the moves.
-- @param sup the local supervisor (name or pid)
-- @return true, or nil and "stopping" (the supervisor is stopping its children)
function M.rebalance(sup) return call(sup, { "rebalance" }) end

-- A view's mode: "local" (the default) or "global"; another raises.
local function mode_arg(fname, mode)
  if mode == nil then return "local" end
  if mode ~= "local" and mode ~= "global" then
    error("pogo.dynamic_supervisor." .. fname .. ': mode must be "local" or "global", got ' .. tostring(mode), 3)
  end
  return mode
end

--- Children: `"local"` (default) lists what this node supervises,
-- `"global"` every running child in the cluster (with its pid and `node`).
-- Entries are `{id, pid | "restarting" | "undefined", type, modules}` with the
-- same fields by name, sorted by id; local entries also carry `status`
-- ("starting", "running", "restarting" or "stopping") and `error`, global
-- ones `node`. Read from the supervisor's state, without waiting for it.
function M.which_children(sup, mode) return (view(sup, "which_children", mode_arg("which_children", mode))) end

--- Counts `{specs =, active =, supervisors =, workers =}`, `"local"` or `"global"`:
-- both kept as counters as the children change, so a call costs the same at
-- any size. `active` counts the children running (or stopping) with a pid.
function M.count_children(sup, mode) return (view(sup, "count_children", mode_arg("count_children", mode))) end

--- Every child spec requested in the cluster and not terminated (running or
-- not), as this node knows them.
function M.specs(sup) return (view(sup, "specs")) end

--- The pid running child `id` anywhere in the cluster, or nil.
function M.whereis(sup, id) return (view(sup, "whereis", id)) end

--- The owner of `id`: the node it is pinned to while that node is in the
-- ring, else the ring's node for `id` (nil when the ring is empty).
function M.node_for(sup, id) return (view(sup, "node_for", id)) end

--- Whether this node is the owner of `id` (`node_for(sup, id) == pogo.node()`),
-- as DistributedSupervisor's `mine?`: the node where it runs, or will run
-- once it has moved, started or restarted.
-- @treturn boolean
function M.mine(sup, id) return (view(sup, "mine", id)) == true end

--- The nodes of the ring, sorted.
function M.nodes(sup) return (view(sup, "nodes")) end

--- Call child `id` wherever it runs (see `pogo.call`); raises `noproc` if it runs nowhere.
function M.call(sup, id, request, timeout)
  local pid = M.whereis(sup, id)
  if not pid then error("noproc: child " .. events.describe(id) .. " is not running", 2) end
  return pogo.call(pid, request, timeout)
end

--- Cast to child `id` wherever it runs; false if it runs nowhere.
function M.cast(sup, id, msg)
  local pid = M.whereis(sup, id)
  if not pid then return false end
  return pogo.cast(pid, msg)
end

return M
