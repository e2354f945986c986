-- Node script for spec/cluster/attack_spec.lua (run by bin/pogo): starts the
-- node's children under a supervisor registered as "sup" (support.attack)
-- and stays, as the supervisor's parent, for the node's life.
local pogo = require "pogo"
require("support.attack").start_children()
while true do pogo.receive() end
