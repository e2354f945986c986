-- The cluster's web page in a real browser (Debian's headless Chromium,
-- driven through the DevTools protocol: spec/support/browser.lua): 3 nodes,
-- one serving the page; the page shows the 3 nodes and the children (one
-- page of rows, however many there are), asks nothing of any other host,
-- and shows a node SIGKILLed down within 2 s (listed with its error while
-- the others redial it: it did not leave on purpose).
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"
local browser = require "support.browser"

local N = 120 -- more than one page of rows (50)

describe("the web page in a browser", function()
  local c, nodes, url, b, page

  setup(function()
    browser.ensure() -- installs Debian's chromium if it is missing
    c = cluster.new { quiet = true }
    local http
    nodes, http = require("support.observed_node").start_cluster(c, { prefix = "w", children = N, http = true })
    url = "http://" .. http .. "/"
    b = browser.launch { width = 1280, height = 1000 }
    page = b:open(url, { network = true })
  end)

  teardown(function()
    if b then b:close() end
    c:teardown()
  end)

  local function up_rows()
    return "document.querySelectorAll('#nodes tr[data-state=up]').length"
  end

  it("shows the 3 nodes, and the children: their count and one page of them", function()
    page:wait(up_rows() .. " === 3", 5000, "3 nodes in the page")
    assert.are.equal("3", page:eval("document.getElementById('node-count').textContent"))
    local names = page:eval("Array.from(document.querySelectorAll('#nodes tr[data-node]')).map(e => e.dataset.node)")
    table.sort(names)
    assert.are.same({ nodes[1].name, nodes[2].name, nodes[3].name }, names)
    page:wait("document.getElementById('children-total').textContent === '" .. N .. "'", 5000, "the child count")
    assert.are.equal(tostring(N), page:eval("document.getElementById('child-count').textContent"))
    page:wait("document.querySelectorAll('#children tr').length === 50", 5000, "a page of children")
    local per = page:eval("Array.from(document.querySelectorAll('[data-node-children]')).map(e => +e.textContent)")
    local sum = 0
    for _, k in ipairs(per) do sum = sum + k end
    assert.are.equal(N, sum)
    assert.are.equal(3, #per)
    assert.are.equal("live", page:eval("document.getElementById('conn').dataset.state"))
  end)

  it("asks nothing of any other host", function()
    local origin = url:match("^(http://[^/]+/)")
    local urls = page:requests()
    assert.is_true(#urls >= 4, "the page, its script, style, icon and API")
    for _, u in ipairs(urls) do
      assert.are.equal(origin, u:sub(1, #origin), u)
    end
  end)

  it("shows a node SIGKILLed down within 2 s", function()
    page:wait(up_rows() .. " === 3", 5000, "3 nodes in the page")
    local victim = nodes[3]
    local t0 = uv.hrtime()
    c:kill(victim)
    page:wait(up_rows() .. " === 2 && document.querySelector('#nodes tr[data-node=\"" .. victim.name
      .. "\"]').dataset.state === 'error'", 5000, "the node down in the page")
    local took = (uv.hrtime() - t0) / 1e6
    assert.is_true(took < 2000, "the page showed the node down after " .. took .. " ms")
    assert.are.equal("2", page:eval("document.getElementById('node-count').textContent"))
    page:wait("document.getElementById('events').textContent.includes('" .. victim.name .. " went down')", 3000,
      "the node's going in the timeline")
    -- its children come back on the other two, and the page says so
    page:wait("Array.from(document.querySelectorAll('[data-node-children]')).length === 2 && "
      .. "document.getElementById('children-total').textContent === '" .. N .. "'", 10000, "the children back")
    -- and the list of children agrees with the header soon after (it is fetched again until it does):
    -- none of its rows on the dead node
    page:wait("document.getElementById('page-info').textContent.endsWith(' shown of " .. N .. "') && "
      .. "document.querySelectorAll('#children tr').length === 50 && "
      .. "!Array.from(document.querySelectorAll('#children tr td:nth-child(2)'))"
      .. ".some(e => e.textContent === '" .. victim.name .. "')", 4000, "the list of children up to date")
    assert.is_true(#pogo.nodes() >= 2)
  end)
end)
