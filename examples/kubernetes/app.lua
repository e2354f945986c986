-- app.lua: what every pod of examples/kubernetes/ runs (bin/pogo runs it as
-- the node's first process). Each pod starts the same distributed supervisor;
-- its six tickers spread over the pods that are up, move when pods come and
-- go, and restart elsewhere when a pod dies.
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"

-- The children's module. Every node must be able to require it: the script
-- defines it on each of them.
package.preload["app.ticker"] = function()
  local M = {}
  function M.start_link(n)
    return pogo.spawn_link(function()
      while true do
        pogo.log.info("ticker %d runs on %s (%d nodes in the cluster)", n, pogo.node(), #pogo.nodes() + 1)
        pogo.sleep(10000)
      end
    end)
  end
  return M
end

local children = {}
for n = 1, 6 do children[n] = { id = { "ticker", n }, start = { "app.ticker", "start_link", n } } end
assert(dsup.start_link { name = "tickers", children = children })
