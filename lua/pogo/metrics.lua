--- The cluster in Prometheus' text exposition format (version 0.0.4), as
-- `/metrics` serves it (`pogo.dashboard`): one scrape of the node that
-- serves the page gives every node's figures, each sample labelled with its
-- `node` (and `supervisor`, `peer` where it applies), read from a
-- `pogo.observer.gather` snapshot.
--
-- Families (each with its HELP and TYPE lines, in this order):
--
--     pogo_nodes                              gauge    nodes that answered (observers excluded)
--     pogo_node_up{node}                      gauge    1 if the node answered in time, else 0 (also
--                                                      a node that is down: `pogo.observer.down_nodes`)
--     pogo_processes{node}                    gauge    live processes
--     pogo_run_queue{node}                    gauge    processes ready to run
--     pogo_memory_bytes{node,area}            gauge    area="lua" (the Lua heap), "rss"
--     pogo_messages_delivered_total{node}     counter  messages put in local mailboxes
--     pogo_dist_messages_received_total{node} counter  process messages from other nodes
--     pogo_dist_messages_sent_total{node}     counter  process messages to other nodes
--     pogo_dist_bytes_received_total{node}    counter  bytes of frames from other nodes
--     pogo_dist_bytes_sent_total{node}        counter  bytes of frames to other nodes
--     pogo_link_rtt_seconds{node,peer}        gauge    round-trip time of the link (moving average)
--     pogo_supervisor_children{supervisor,node} gauge  children running there
--     pogo_supervisor_specs{supervisor}       gauge    child specs known (the largest count of any node)
--     pogo_ring_share{supervisor,node}        gauge    the node's share of the supervisor's ring
--     pogo_restarts_total{supervisor,node}    counter  children restarted there
--     pogo_moves_total{supervisor,node}       counter  children that moved there
--   (`supervisor`: its name, else its scope; a supervisor whose pg scope is
--   not its name has a `scope` label too, after `supervisor`, which tells two
--   supervisors of one name apart)
--
-- Label values are escaped as the format says (backslash, double quote,
-- line feed); numbers are written so that Go's ParseFloat reads them back
-- (integers exactly; NaN, +Inf, -Inf by name).
-- @module pogo.metrics
local json_mod = require "pogo.json"

local M = {}

--- The Content-Type of the format.
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

-- A label value: the format's escapes, and a byte that is not part of valid
-- UTF-8 (the format wants UTF-8) as the text \xNN.
local function escape(v)
  local s = tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ["\""] = "\\\"", ["\n"] = "\\n" })
  return (json_mod.utf8_valid(s, function(b) return string.format("\\\\x%02X", b) end))
end

-- A supervisor's labels: its name, its scope when that differs (two
-- supervisors of one name stay apart; the usual one, whose scope is its
-- name, keeps the labels it always had), then `k`, `v` if given.
local function sup_labels(s, k, v)
  local t = { "supervisor", s.name }
  if s.scope ~= nil and s.scope ~= s.name then t[#t + 1], t[#t + 2] = "scope", s.scope end
  if k then t[#t + 1], t[#t + 2] = k, v end
  return t
end

local function number(x)
  if math.type(x) == "integer" then return string.format("%d", x) end
  if x ~= x then return "NaN" end
  if x == math.huge then return "+Inf" end
  if x == -math.huge then return "-Inf" end
  if x == math.floor(x) and math.abs(x) < 2 ^ 53 then return string.format("%d", math.floor(x)) end
  return string.format("%.17g", x)
end

-- A family: its header lines, then samples {labels, value}.
local function family(out, name, kind, help, samples)
  out[#out + 1] = "# HELP " .. name .. " " .. help .. "\n"
  out[#out + 1] = "# TYPE " .. name .. " " .. kind .. "\n"
  for _, s in ipairs(samples) do
    local labels = s[1]
    local parts = {}
    for i = 1, #labels, 2 do parts[#parts + 1] = labels[i] .. "=\"" .. escape(labels[i + 1]) .. "\"" end
    out[#out + 1] = name .. (#parts > 0 and "{" .. table.concat(parts, ",") .. "}" or "") .. " "
                    .. number(s[2]) .. "\n"
  end
end

--- Render a snapshot.
-- @tparam table snap a `pogo.observer.gather` snapshot
-- @treturn string the text
function M.render(snap)
  local out = {}
  local answered = {}
  for _, n in ipairs(snap.nodes) do
    if not n.error then answered[#answered + 1] = n end
  end
  local function per_node(get)
    local samples = {}
    for _, n in ipairs(answered) do
      local v = get(n)
      if v then samples[#samples + 1] = { { "node", n.name }, v } end
    end
    return samples
  end
  family(out, "pogo_nodes", "gauge", "Nodes of the cluster that answered, observers excluded.",
    { { {}, #answered } })
  local up = {}
  for _, n in ipairs(snap.nodes) do up[#up + 1] = { { "node", n.name }, n.error and 0 or 1 } end
  family(out, "pogo_node_up", "gauge", "Whether the node answered the node serving the metrics in time.", up)
  family(out, "pogo_processes", "gauge", "Live processes of the node.", per_node(function(n) return n.processes end))
  family(out, "pogo_run_queue", "gauge", "Processes of the node ready to run.",
    per_node(function(n) return n.run_queue end))
  local mem = {}
  for _, n in ipairs(answered) do
    mem[#mem + 1] = { { "node", n.name, "area", "lua" }, n.memory.lua }
    mem[#mem + 1] = { { "node", n.name, "area", "rss" }, n.memory.rss }
  end
  family(out, "pogo_memory_bytes", "gauge", "Memory of the node: its Lua heap (area lua) and resident set (area rss).",
    mem)
  family(out, "pogo_messages_delivered_total", "counter", "Messages put in the node's local mailboxes.",
    per_node(function(n) return n.messages end))
  family(out, "pogo_dist_messages_received_total", "counter", "Process messages the node received from other nodes.",
    per_node(function(n) return n.dist.messages_in end))
  family(out, "pogo_dist_messages_sent_total", "counter", "Process messages the node sent to other nodes.",
    per_node(function(n) return n.dist.messages_out end))
  family(out, "pogo_dist_bytes_received_total", "counter", "Bytes of frames the node received from other nodes.",
    per_node(function(n) return n.dist.bytes_in end))
  family(out, "pogo_dist_bytes_sent_total", "counter", "Bytes of frames the node sent to other nodes.",
    per_node(function(n) return n.dist.bytes_out end))
  local rtt = {}
  for _, n in ipairs(answered) do
    local peers = {}
    for peer in pairs(n.dist.links or {}) do peers[#peers + 1] = peer end
    table.sort(peers)
    for _, peer in ipairs(peers) do
      local l = n.dist.links[peer]
      if l.rtt_avg_ms then rtt[#rtt + 1] = { { "node", n.name, "peer", peer }, l.rtt_avg_ms / 1000 } end
    end
  end
  family(out, "pogo_link_rtt_seconds", "gauge", "Round-trip time of the link from node to peer (moving average).", rtt)
  local children, specs, shares, restarts, moves = {}, {}, {}, {}, {}
  for _, n in ipairs(answered) do
    for _, s in ipairs(n.supervisors or {}) do
      local labels = sup_labels(s, "node", n.name)
      children[#children + 1] = { labels, s.active }
      restarts[#restarts + 1] = { labels, s.counters.restarts or 0 }
      moves[#moves + 1] = { labels, s.counters.moves or 0 }
    end
  end
  for _, s in ipairs(snap.supervisors or {}) do
    specs[#specs + 1] = { sup_labels(s), s.specs }
    local nodes = {}
    for node in pairs(s.shares) do nodes[#nodes + 1] = node end
    table.sort(nodes)
    for _, node in ipairs(nodes) do
      shares[#shares + 1] = { sup_labels(s, "node", node), s.shares[node] }
    end
  end
  family(out, "pogo_supervisor_children", "gauge", "Children of the distributed supervisor running on the node.",
    children)
  family(out, "pogo_supervisor_specs", "gauge", "Child specs of the distributed supervisor known in the cluster.",
    specs)
  family(out, "pogo_ring_share", "gauge", "Share of the supervisor's hash ring the node owns.", shares)
  family(out, "pogo_restarts_total", "counter", "Children of the supervisor restarted on the node.", restarts)
  family(out, "pogo_moves_total", "counter", "Children of the supervisor that moved onto the node.", moves)
  return table.concat(out)
end

return M
