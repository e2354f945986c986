-- Node script for the TLS specs (run by bin/pogo): connect to the node named
-- by the first argument, ask it for its name with pogo.rpc, and print
-- "PROBE <ok> <answer>" on stdout. It shows that a node this spec's own node
-- cannot reach (one without TLS) still answers.
local pogo = require "pogo"

local target = ...
local ok, res = false, nil
local name, err = pogo.connect(target)
if name then ok, res = pogo.rpc(target, "pogo", "node", {}, 3000) end
if not name then res = err end
io.stdout:write("PROBE ", tostring(ok), " ", tostring(res), "\n")
io.stdout:flush()
