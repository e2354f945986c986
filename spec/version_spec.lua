-- pogo._VERSION and the rockspecs agree (rockspec/pogo-<version>-<rev>.rockspec).
local pogo = require "pogo"
local uv = require "luv"

-- The rockspec files: name -> the table their code defines.
local function rockspecs()
  local out = {}
  local it = assert(uv.fs_scandir("rockspec"))
  while true do
    local name = uv.fs_scandir_next(it)
    if not name then break end
    if name:match("%.rockspec$") then
      local t = {}
      assert(loadfile("rockspec/" .. name, "t", t))()
      out[name] = t
    end
  end
  return out
end

describe("the version", function()
  it("pogo._VERSION is the version of the one versioned rockspec", function()
    assert.matches("^%d+%.%d+%.%d+$", pogo._VERSION)
    local versioned = {}
    for name, spec in pairs(rockspecs()) do
      assert.are.equal("pogo", spec.package)
      assert.are.equal(name, "pogo-" .. spec.version .. ".rockspec")
      if spec.version ~= "scm-1" then versioned[#versioned + 1] = spec end
    end
    assert.are.equal(1, #versioned)
    local spec = versioned[1]
    assert.are.equal(pogo._VERSION, spec.version:match("^(.*)%-%d+$"))
    assert.are.equal("MIT", spec.description.license)
    assert.is_string(spec.description.homepage)
    assert.are.equal("pogo-" .. pogo._VERSION .. ".tar.gz", spec.source.url)
  end)
end)
